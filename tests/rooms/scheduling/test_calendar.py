"""Calendar files for sessions: invitations, cancellations, feeds, zones and hostile text."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from rooms.errors import InvalidInput
from rooms.scheduling.calendar import Attendee, CalendarEvent, feed_ics, invitation_ics

# 2027-03-16 10:00 in Chicago: after the US change (03-14), before the UK one (03-28).
SESSION = dt.datetime(2027, 3, 16, 10, tzinfo=ZoneInfo("America/Chicago")).timestamp()


def make_event(**changes: Any) -> CalendarEvent:
    event = CalendarEvent(
        uid="4f1c9a@caucus.example",
        sequence=0,
        start=SESSION,
        minutes=90,
        summary="Mediation: Harbor Lane lease",
        description="Join from the link.\nBring the lease.",
        url="https://caucus.example/rooms/4f1c9a",
        organizer=Attendee("Dr. Ann Mediator", "ann@mediation.example"),
        attendees=(
            Attendee("Bob Tenant", "bob@tenant.example"),
            Attendee("Lisa Landlord", "lisa@landlord.example", "OPT-PARTICIPANT"),
        ),
        time_zone="America/Chicago",
        stamp=dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC).timestamp(),
    )
    return dataclasses.replace(event, **changes)


def only_event(text: str) -> Any:
    events = Calendar.from_ical(text).walk("VEVENT")
    assert len(events) == 1
    return events[0]


def test_invitation() -> None:
    text = invitation_ics(make_event())
    calendar = Calendar.from_ical(text)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar["PRODID"]) == "-//Caucus//Caucus scheduling//EN"
    event = only_event(text)
    assert str(event["UID"]) == "4f1c9a@caucus.example"
    assert event.decoded("SEQUENCE") == 0
    assert event["DTSTART"].params["TZID"] == "America/Chicago"
    start = event.decoded("DTSTART")
    assert start.astimezone(dt.UTC).timestamp() == SESSION
    assert event.decoded("DTEND") - start == dt.timedelta(minutes=90)
    assert event.decoded("DTSTAMP") == dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    assert str(event["URL"]) == str(event["LOCATION"]) == "https://caucus.example/rooms/4f1c9a"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["DESCRIPTION"]) == "Join from the link.\nBring the lease."
    assert str(event["ORGANIZER"]) == "mailto:ann@mediation.example"
    assert event["ORGANIZER"].params["CN"] == "Dr. Ann Mediator"
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == [
        "mailto:bob@tenant.example",
        "mailto:lisa@landlord.example",
    ]
    assert [dict(a.params) for a in attendees] == [
        {
            "CN": "Bob Tenant",
            "ROLE": "REQ-PARTICIPANT",
            "PARTSTAT": "NEEDS-ACTION",
            "RSVP": "FALSE",
        },
        {
            "CN": "Lisa Landlord",
            "ROLE": "OPT-PARTICIPANT",
            "PARTSTAT": "NEEDS-ACTION",
            "RSVP": "FALSE",
        },
    ]
    zones = calendar.walk("VTIMEZONE")
    assert [str(zone["TZID"]) for zone in zones] == ["America/Chicago"]
    assert "BEGIN:VTIMEZONE" in text and text.index("BEGIN:VTIMEZONE") < text.index("BEGIN:VEVENT")


def test_the_same_instant_written_in_two_zones_across_the_dst_gap() -> None:
    chicago = only_event(invitation_ics(make_event(time_zone="America/Chicago")))
    london = only_event(invitation_ics(make_event(time_zone="Europe/London")))
    assert chicago["DTSTART"].params["TZID"] == "America/Chicago"
    assert london["DTSTART"].params["TZID"] == "Europe/London"
    assert chicago["DTSTART"].to_ical() == b"20270316T100000"
    assert london["DTSTART"].to_ical() == b"20270316T150000"
    in_chicago = chicago.decoded("DTSTART").astimezone(dt.UTC)
    in_london = london.decoded("DTSTART").astimezone(dt.UTC)
    assert in_chicago == in_london == dt.datetime(2027, 3, 16, 15, tzinfo=dt.UTC)
    shown_chicago = in_chicago.astimezone(ZoneInfo("America/Chicago"))
    shown_london = in_london.astimezone(ZoneInfo("Europe/London"))
    assert (shown_chicago.strftime("%H:%M"), shown_chicago.tzname()) == ("10:00", "CDT")
    assert (shown_london.strftime("%H:%M"), shown_london.tzname()) == ("15:00", "GMT")


def test_vtimezone_describes_the_us_change() -> None:
    calendar = Calendar.from_ical(invitation_ics(make_event()))
    (zone,) = calendar.walk("VTIMEZONE")
    daylight = zone.walk("DAYLIGHT")
    assert any(d.decoded("DTSTART").date() == dt.date(2027, 3, 14) for d in daylight)
    assert all(d["TZOFFSETTO"].to_ical() == "-0500" for d in daylight)


def test_cancellation() -> None:
    first = only_event(invitation_ics(make_event()))
    cancel_text = invitation_ics(make_event(sequence=1, cancelled=True))
    calendar = Calendar.from_ical(cancel_text)
    assert str(calendar["METHOD"]) == "CANCEL"
    cancelled = only_event(cancel_text)
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["UID"]) == str(first["UID"])
    assert cancelled.decoded("SEQUENCE") > first.decoded("SEQUENCE")


def test_feed() -> None:
    events = [
        make_event(),
        make_event(
            uid="77aa@caucus.example",
            start=SESSION + 86400 * 30,
            time_zone="Europe/London",
            summary="Arbitration hearing",
        ),
        make_event(uid="88bb@caucus.example", start=SESSION + 3600 * 5, sequence=2, cancelled=True),
    ]
    text = feed_ics(events, "Ann's sessions")
    calendar = Calendar.from_ical(text)
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["X-WR-CALNAME"]) == "Ann's sessions"
    parsed = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in parsed] == [e.uid for e in events]
    assert [str(e["STATUS"]) for e in parsed] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert [e.decoded("DTSTART").astimezone(dt.UTC).timestamp() for e in parsed] == [
        e.start for e in events
    ]
    assert sorted(str(z["TZID"]) for z in calendar.walk("VTIMEZONE")) == [
        "America/Chicago",
        "Europe/London",
    ]
    assert Calendar.from_ical(feed_ics([], "Empty")).walk("VEVENT") == []


def test_user_text_cannot_add_properties() -> None:
    hostile = "Mediation\r\nATTENDEE:mailto:evil@attacker.example\r\nMETHOD:CANCEL;x,y\\"
    event = make_event(
        summary=hostile,
        description=hostile,
        organizer=Attendee(
            'Ann "the boss"\r\nORGANIZER:mailto:evil@attacker.example', "ann@m.example"
        ),
        attendees=(Attendee('Bob";ROLE=CHAIR\nX-EVIL:1', "bob@t.example\r\n"),),
    )
    text = invitation_ics(event)
    assert "evil@attacker.example\r\n" not in text
    lines = text.split("\r\n")
    assert not any(
        line.startswith(
            ("ATTENDEE:mailto:evil", "METHOD:CANCEL", "X-EVIL", "ORGANIZER:mailto:evil")
        )
        for line in lines
    )
    calendar = Calendar.from_ical(text)
    assert str(calendar["METHOD"]) == "REQUEST"
    parsed = only_event(text)
    assert (
        str(parsed["SUMMARY"])
        == "Mediation ATTENDEE:mailto:evil@attacker.example METHOD:CANCEL;x,y\\"
    )
    assert str(parsed["DESCRIPTION"]) == hostile.replace("\r\n", "\n")
    assert str(parsed["ORGANIZER"]) == "mailto:ann@m.example"
    assert (
        parsed["ORGANIZER"].params["CN"] == "Ann 'the boss' ORGANIZER:mailto:evil@attacker.example"
    )
    attendee = parsed["ATTENDEE"]
    assert not isinstance(attendee, list)
    assert str(attendee) == "mailto:bob@t.example"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert attendee.params["CN"] == "Bob';ROLE=CHAIR X-EVIL:1"
    assert "X-EVIL" not in parsed


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "a@b@c",
        "evil@x>\nATTENDEE:mailto:y@z",
        "a b@c.example",
        '"quoted"@x.example',
        "",
    ],
)
def test_bad_addresses_are_rejected(email: str) -> None:
    with pytest.raises(InvalidInput, match="not an e-mail address"):
        invitation_ics(make_event(attendees=(Attendee("Eve", email),)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uid": ""}, "uid"),
        ({"sequence": -1}, "sequence"),
        ({"minutes": 0}, "length"),
        ({"url": "javascript:alert(1)"}, "URL"),
        ({"url": "https://x.example/a b"}, "URL"),
        ({"time_zone": "Nowhere/City"}, "unknown time zone"),
        ({"attendees": (Attendee("Bob", "bob@t.example", "BOSS"),)}, "attendee role"),
    ],
)
def test_bad_events_are_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        invitation_ics(make_event(**changes))
