"""Calendar files (iCalendar, RFC 5545) for scheduled sessions: the invitation or
cancellation mailed to each person, and a neutral's subscribable feed.

Events are written in the neutral's zone (``DTSTART;TZID=America/Chicago``) with a
``VTIMEZONE`` describing that zone around the events' years, so calendars that do not
know the zone by name still place the session at the right instant.

Text from users never becomes structure: summaries, descriptions and the calendar name
are escaped by ``icalendar`` (``\\n``, ``\\;``, ``\\,``); names lose CR, LF and other
control characters and their double quotes become single quotes (``CN`` is a quoted
parameter); e-mail addresses must be one plain ``local@domain``; the URL must be http(s).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from icalendar import Calendar, Event, Timezone, vCalAddress

from rooms.errors import InvalidInput
from rooms.scheduling.availability import zone_named

PRODUCT_ID = "-//Caucus//Caucus scheduling//EN"
ATTENDEE_ROLES = frozenset({"CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT", "NON-PARTICIPANT"})
MAX_NAME = 200
MAX_SUMMARY = 500
MAX_DESCRIPTION = 10_000
MAX_URL = 2000
MAX_EVENTS = 5000

_EMAIL = re.compile(r"^[^@\s\"<>;,:\\()\[\]]{1,64}@[^@\s\"<>;,:\\()\[\]]{1,190}$")
_URL = re.compile(r"^https?://[^\s\"<>\\]+$")


@dataclass(frozen=True)
class Attendee:
    """A person on a calendar event: name, e-mail address and RFC 5545 participation role."""

    name: str
    email: str
    role: str = "REQ-PARTICIPANT"


@dataclass(frozen=True)
class CalendarEvent:
    """One scheduled session as it appears in calendars. ``uid`` stays the same for the
    session's life; ``sequence`` grows with every change, so calendars replace the old copy."""

    uid: str
    sequence: int
    start: float
    minutes: int
    summary: str
    description: str
    url: str
    organizer: Attendee
    attendees: tuple[Attendee, ...]
    time_zone: str
    cancelled: bool = False
    stamp: float = 0.0


def _without_controls(text: str, *, keep_newlines: bool) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for ch in text:
        if (ch == "\n" and keep_newlines) or ch == "\t":
            kept.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            kept.append(" ")
        else:
            kept.append(ch)
    return "".join(kept)


def _line(text: str, limit: int) -> str:
    if not isinstance(text, str):
        raise InvalidInput("calendar text must be a string")
    return " ".join(_without_controls(text[: limit * 2], keep_newlines=False).split())[:limit]


def _name(text: str) -> str:
    return _line(text, MAX_NAME).replace('"', "'")


def _email(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput("an e-mail address must be a string")
    address = text[:300].replace("\r", "").replace("\n", "").strip()
    if not _EMAIL.match(address):
        raise InvalidInput(f"{address[:80]!r} is not an e-mail address")
    return address


def _address(person: Attendee, *, attendee: bool) -> vCalAddress:
    address = vCalAddress(f"mailto:{_email(person.email)}")
    name = _name(person.name)
    if name:
        address.params["CN"] = name
    if attendee:
        role = person.role.upper()
        if role not in ATTENDEE_ROLES:
            raise InvalidInput(f"{person.role[:40]!r} is not a calendar attendee role")
        address.params["ROLE"] = role
        address.params["PARTSTAT"] = "NEEDS-ACTION"
        address.params["RSVP"] = "FALSE"
    return address


def _checked(event: CalendarEvent) -> None:
    if not isinstance(event.uid, str) or not _line(event.uid, 255) or len(event.uid) > 255:
        raise InvalidInput("a calendar event needs a uid of at most 255 characters")
    if isinstance(event.sequence, bool) or not isinstance(event.sequence, int):
        raise InvalidInput("the event sequence must be a whole number")
    if not 0 <= event.sequence <= 1_000_000:
        raise InvalidInput("the event sequence must be from 0 to 1000000")
    if isinstance(event.minutes, bool) or not isinstance(event.minutes, int):
        raise InvalidInput("the event length must be whole minutes")
    if not 1 <= event.minutes <= 1440:
        raise InvalidInput("the event length must be from 1 to 1440 minutes")
    if not isinstance(event.start, int | float) or not -1e11 < event.start < 1e11:
        raise InvalidInput("the event start is not a time")
    if not isinstance(event.url, str) or len(event.url) > MAX_URL or not _URL.match(event.url):
        raise InvalidInput("the event URL must be an http(s) address")
    if len(event.attendees) > 500:
        raise InvalidInput("at most 500 attendees")


def _event(event: CalendarEvent) -> Event:
    _checked(event)
    zone = zone_named(event.time_zone)
    start = dt.datetime.fromtimestamp(event.start, dt.UTC).astimezone(zone)
    end = (start + dt.timedelta(minutes=event.minutes)).astimezone(zone)
    stamp = event.stamp or time.time()
    component = Event()
    component.add("uid", _line(event.uid, 255))
    component.add("sequence", event.sequence)
    component.add("dtstamp", dt.datetime.fromtimestamp(stamp, dt.UTC))
    component.add("dtstart", start)
    component.add("dtend", end)
    component.add("summary", _line(event.summary, MAX_SUMMARY))
    description = _without_controls(event.description[:MAX_DESCRIPTION], keep_newlines=True)
    if description.strip():
        component.add("description", description)
    component.add("url", event.url)
    component.add("location", event.url)
    component.add("status", "CANCELLED" if event.cancelled else "CONFIRMED")
    component.add("organizer", _address(event.organizer, attendee=False))
    for attendee in event.attendees:
        component.add("attendee", _address(attendee, attendee=True))
    return component


def _calendar(method: str, events: Sequence[CalendarEvent], name: str | None) -> str:
    if len(events) > MAX_EVENTS:
        raise InvalidInput(f"at most {MAX_EVENTS} events in one calendar")
    components = [_event(event) for event in events]
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    if name is not None:
        calendar.add("x-wr-calname", _line(name, MAX_NAME))
    years: dict[str, list[int]] = {}
    for event in events:
        year = dt.datetime.fromtimestamp(event.start, zone_named(event.time_zone)).year
        years.setdefault(event.time_zone, []).append(year)
    for tzid, used in sorted(years.items()):
        calendar.add_component(
            Timezone.from_tzid(
                tzid, first_date=dt.date(min(used), 1, 1), last_date=dt.date(max(used) + 1, 1, 1)
            )
        )
    for component in components:
        calendar.add_component(component)
    text: bytes = calendar.to_ical()
    return text.decode("utf-8")


def invitation_ics(event: CalendarEvent) -> str:
    """The calendar file mailed for one session: ``METHOD:REQUEST``, or ``METHOD:CANCEL``
    with ``STATUS:CANCELLED`` once it is cancelled (same ``UID``, higher ``SEQUENCE``)."""
    return _calendar("CANCEL" if event.cancelled else "REQUEST", [event], None)


def feed_ics(events: Sequence[CalendarEvent], name: str) -> str:
    """A subscribable calendar (``METHOD:PUBLISH``) of sessions, cancelled ones marked
    ``STATUS:CANCELLED``, with a ``VTIMEZONE`` for every zone used."""
    return _calendar("PUBLISH", list(events), name)
