"""A neutral's availability: open slots, the reasons a slot is not open, and its JSON form."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rooms.errors import InvalidInput
from rooms.scheduling.availability import Availability, open_slots, slot_is_open, slot_problem

CHICAGO = ZoneInfo("America/Chicago")
HOUR = 3600.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp()


def chicago(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=CHICAGO).timestamp()


def hhmm(instant: float) -> str:
    return dt.datetime.fromtimestamp(instant, CHICAGO).strftime("%a %d %H:%M")


def weekdays(*windows: tuple[str, str]) -> dict[str, list[list[str]]]:
    return {day: [list(w) for w in windows] for day in ("mon", "tue", "wed", "thu", "fri")}


def make(**changes: Any) -> Availability:
    data: dict[str, Any] = {
        "time_zone": "America/Chicago",
        "weekly": weekdays(("09:00", "12:00")),
        "lengths": [60, 120],
        "buffer_minutes": 15,
        "step_minutes": 30,
        "notice_hours": 0,
        "horizon_days": 60,
    }
    data.update(changes)
    return Availability.from_json(data)


# Monday 2027-06-07, 00:00 in Chicago: a plain summer week.
MONDAY = chicago(2027, 6, 7)


def test_slots_follow_the_weekly_hours_in_the_neutrals_zone() -> None:
    slots = open_slots(make(), 60, [], now=MONDAY, end=MONDAY + 24 * HOUR)
    assert [hhmm(s) for s in slots] == [
        "Mon 07 09:00",
        "Mon 07 09:30",
        "Mon 07 10:00",
        "Mon 07 10:30",
        "Mon 07 11:00",
    ]
    assert slots[0] == utc(2027, 6, 7, 14)  # 09:00 CDT


def test_longer_sessions_fit_inside_the_window() -> None:
    slots = open_slots(make(), 120, [], now=MONDAY, end=MONDAY + 24 * HOUR)
    assert [hhmm(s) for s in slots] == ["Mon 07 09:00", "Mon 07 09:30", "Mon 07 10:00"]


def test_only_offered_lengths() -> None:
    with pytest.raises(InvalidInput, match="not a session length offered"):
        open_slots(make(), 90, [], now=MONDAY)
    assert slot_problem(make(), chicago(2027, 6, 7, 9), 90, [], now=MONDAY) == (
        "not a session length offered"
    )


def test_weekends_and_blocked_days_have_no_slots() -> None:
    av = make(blocked_days=["2027-06-08", "2027-06-10"])
    slots = open_slots(av, 120, [], now=MONDAY, end=MONDAY + 7 * 24 * HOUR)
    assert sorted({hhmm(s)[:6] for s in slots}) == ["Fri 11", "Mon 07", "Wed 09"]
    assert slot_problem(av, chicago(2027, 6, 8, 9), 60, [], now=MONDAY) == "on a blocked day"
    assert slot_problem(av, chicago(2027, 6, 12, 9), 60, [], now=MONDAY) == (
        "outside the neutral's hours"
    )


def test_busy_intervals_keep_the_buffer_clear() -> None:
    busy = [(chicago(2027, 6, 7, 10), chicago(2027, 6, 7, 10, 30))]
    slots = open_slots(make(), 60, busy, now=MONDAY, end=MONDAY + 24 * HOUR)
    # 09:00-10:00 ends 0 minutes before the booking (needs 15); 10:30-11:30 starts right
    # after it; 11:00 is the first start 15 minutes clear of 10:30.
    assert [hhmm(s) for s in slots] == ["Mon 07 11:00"]
    assert slot_problem(make(), chicago(2027, 6, 7, 9), 60, busy, now=MONDAY) == "taken"
    no_buffer = make(buffer_minutes=0)
    slots = open_slots(no_buffer, 60, busy, now=MONDAY, end=MONDAY + 24 * HOUR)
    assert [hhmm(s) for s in slots] == ["Mon 07 09:00", "Mon 07 10:30", "Mon 07 11:00"]


def test_overlapping_busy_intervals_are_merged() -> None:
    busy = [
        (chicago(2027, 6, 7, 9), chicago(2027, 6, 7, 9, 45)),
        (chicago(2027, 6, 7, 9, 30), chicago(2027, 6, 7, 10)),
        (chicago(2027, 6, 7, 8), chicago(2027, 6, 7, 8, 30)),
    ]
    slots = open_slots(make(), 60, busy, now=MONDAY, end=MONDAY + 24 * HOUR)
    assert [hhmm(s) for s in slots] == ["Mon 07 10:30", "Mon 07 11:00"]


def test_notice_and_horizon() -> None:
    av = make(notice_hours=48, horizon_days=7)
    slots = open_slots(av, 60, [], now=MONDAY + 9 * HOUR)  # Monday 09:00
    assert hhmm(slots[0]) == "Wed 09 09:00"
    assert hhmm(slots[-1]) == "Mon 14 09:00"  # exactly 7 days ahead
    assert slot_problem(av, MONDAY + 9 * HOUR, 60, [], now=MONDAY + 10 * HOUR) == "in the past"
    assert slot_problem(av, chicago(2027, 6, 8, 9), 60, [], now=MONDAY + 9 * HOUR) == (
        "too soon (needs 48 hours' notice)"
    )
    assert slot_problem(
        make(notice_hours=1), MONDAY + 9 * HOUR, 60, [], now=MONDAY + 8.5 * HOUR
    ) == ("too soon (needs 1 hour's notice)")
    assert slot_problem(av, chicago(2027, 6, 14, 9, 30), 60, [], now=MONDAY + 9 * HOUR) == (
        "beyond the booking horizon"
    )


def test_range_and_limit() -> None:
    av = make()
    everything = open_slots(av, 60, [], now=MONDAY)
    # 60 days from Monday 7 June 00:00: 8 full weeks, then Monday to Thursday; 5 slots a day
    assert len(everything) == 8 * 5 * 5 + 4 * 5
    assert open_slots(av, 60, [], now=MONDAY, limit=7) == everything[:7]
    tuesday = chicago(2027, 6, 8)
    ranged = open_slots(av, 60, [], now=MONDAY, start=tuesday, end=tuesday + 24 * HOUR)
    assert ranged == [s for s in everything if tuesday <= s < tuesday + 24 * HOUR]
    assert len(ranged) == 5
    assert open_slots(av, 60, [], now=MONDAY, start=tuesday, end=tuesday) == []
    for bad in (0, -1, 5001, True):
        with pytest.raises(InvalidInput, match="limit"):
            open_slots(av, 60, [], now=MONDAY, limit=bad)
    with pytest.raises(InvalidInput, match="finite"):
        open_slots(av, 60, [], now=float("nan"))


def test_us_daylight_saving_change_moves_the_utc_time_not_the_local_one() -> None:
    # 2027-03-14: Chicago goes from CST (UTC-6) to CDT (UTC-5).
    av = make(notice_hours=0)
    now = chicago(2027, 3, 12)  # Friday
    slots = open_slots(av, 60, [], now=now, end=chicago(2027, 3, 16))
    friday = [s for s in slots if hhmm(s).startswith("Fri")]
    monday = [s for s in slots if hhmm(s).startswith("Mon")]
    assert friday[0] == utc(2027, 3, 12, 15)  # 09:00 CST
    assert monday[0] == utc(2027, 3, 15, 14)  # 09:00 CDT
    assert hhmm(friday[0])[-5:] == hhmm(monday[0])[-5:] == "09:00"


def test_spring_forward_gap_is_skipped() -> None:
    av = make(weekly={"sun": [["01:00", "04:00"]]}, lengths=[60])
    now = chicago(2027, 3, 13)
    slots = open_slots(av, 60, [], now=now, end=chicago(2027, 3, 15))
    # 02:00 and 02:30 do not exist on 2027-03-14 in Chicago.
    assert [hhmm(s) for s in slots] == ["Sun 14 01:00", "Sun 14 01:30", "Sun 14 03:00"]
    assert slots == [utc(2027, 3, 14, 7), utc(2027, 3, 14, 7, 30), utc(2027, 3, 14, 8)]


def test_fall_back_uses_the_first_occurrence() -> None:
    # 2027-11-07: 01:00-02:00 happens twice in Chicago (CDT, then CST).
    av = make(weekly={"sun": [["00:30", "03:00"]]}, lengths=[60], buffer_minutes=0)
    now = chicago(2027, 11, 6)
    slots = open_slots(av, 60, [], now=now, end=chicago(2027, 11, 8))
    assert slots == [
        utc(2027, 11, 7, 5, 30),  # 00:30 CDT
        utc(2027, 11, 7, 6),  # 01:00 CDT (first)
        utc(2027, 11, 7, 6, 30),  # 01:30 CDT (first)
        utc(2027, 11, 7, 8),  # 02:00 CST
    ]
    # 01:00 CST, the second 01:00, is not offered.
    assert slot_problem(av, utc(2027, 11, 7, 7), 60, [], now=now) == "outside the neutral's hours"


def test_slot_problem_agrees_with_open_slots() -> None:
    av = make(
        weekly={**weekdays(("09:00", "12:00"), ("13:15", "17:00")), "sun": [["00:00", "03:00"]]}
    )
    busy = [(chicago(2027, 3, 10, 14), chicago(2027, 3, 10, 15))]
    now = chicago(2027, 3, 8, 10)
    offered = set(open_slots(av, 60, busy, now=now, limit=5000))
    instant = now - 2 * HOUR
    checked = 0
    while instant < chicago(2027, 3, 16):
        assert slot_is_open(av, instant, 60, busy, now=now) is (instant in offered), hhmm(instant)
        instant += 15 * 60
        checked += 1
    assert checked > 500 and len(offered) > 40


def test_off_grid_start_is_not_a_slot() -> None:
    av = make()
    assert slot_problem(av, chicago(2027, 6, 7, 9, 15), 60, [], now=MONDAY) == (
        "not at a slot start (every 30 minutes from the start of the hours)"
    )
    assert slot_problem(av, chicago(2027, 6, 7, 9) + 1, 60, [], now=MONDAY) is not None
    assert slot_problem(av, chicago(2027, 6, 7, 9), 60, [], now=MONDAY) is None
    assert slot_problem(av, chicago(2027, 6, 7, 11, 30), 60, [], now=MONDAY) == (
        "outside the neutral's hours"
    )


def test_json_round_trip() -> None:
    data = {
        "time_zone": "America/Chicago",
        "weekly": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["08:30", "11:00"]]},
        "blocked_days": ["2027-01-01", "2026-12-25"],
        "lengths": [120, 60],
        "buffer_minutes": 10,
        "step_minutes": 15,
        "notice_hours": 12,
        "horizon_days": 90,
    }
    av = Availability.from_json(data)
    assert av.weekly[0] == ((dt.time(9), dt.time(12)), (dt.time(13), dt.time(17)))
    assert av.lengths == (60, 120)
    assert av.to_json()["blocked_days"] == ["2026-12-25", "2027-01-01"]
    assert Availability.from_json(av.to_json()) == av
    defaults = Availability.from_json({"time_zone": "UTC", "weekly": {}})
    assert (defaults.lengths, defaults.buffer_minutes, defaults.step_minutes) == (
        (60, 120, 180),
        15,
        30,
    )
    assert (defaults.notice_hours, defaults.horizon_days) == (24, 60)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"time_zone": "../../etc/passwd"}, "unknown time zone"),
        ({"time_zone": "America"}, "unknown time zone"),
        ({"time_zone": 5}, "unknown time zone"),
        ({"weekly": {"mon": [["25:00", "26:00"]]}}, "on mon, 25:00 is not a time of day"),
        ({"weekly": {"mon": [["9am", "17:00"]]}}, "'9am' is not a time like 09:30"),
        ({"weekly": {"mon": [["09:00", "24:00"]]}}, "24:00 is not a time of day"),
        (
            {"weekly": {"tue": [["12:00", "09:00"]]}},
            "on tue the window 12:00-09:00 must start before",
        ),
        ({"weekly": {"wed": [["09:00", "09:00"]]}}, "must start before it ends"),
        ({"weekly": {"thu": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "windows on thu overlap"),
        (
            {"weekly": {"fri": [[f"0{h}:00", f"0{h}:30"] for h in range(7)]}},
            "at most 6 windows a day",
        ),
        ({"weekly": {"funday": []}}, "'funday' is not a day"),
        ({"weekly": {"mon": [["09:00"]]}}, "must be a [start, end] pair"),
        ({"weekly": {"mon": "09:00-17:00"}}, "must be a list"),
        ({"weekly": []}, "weekly hours must be an object"),
        ({"blocked_days": ["2027-02-30"]}, "2027-02-30 is not a real date"),
        ({"blocked_days": ["tomorrow"]}, "'tomorrow' is not a date"),
        ({"blocked_days": ["2027-01-01"] * 367}, "at most 366 blocked days"),
        ({"lengths": []}, "offer from 1 to 12 session lengths"),
        ({"lengths": [10]}, "session length must be from 15 to 720, not 10"),
        ({"lengths": [60, 60]}, "must not repeat"),
        ({"lengths": [60.5]}, "whole number"),
        ({"lengths": [True]}, "whole number"),
        ({"lengths": "60"}, "lengths must be a list"),
        ({"buffer_minutes": 241}, "buffer (minutes) must be from 0 to 240"),
        ({"step_minutes": 20}, "step must be 15, 30 or 60"),
        ({"notice_hours": -1}, "notice (hours) must be from 0 to 720"),
        ({"horizon_days": 0}, "horizon (days) must be from 1 to 365"),
        ({"horizon_days": "60"}, "whole number"),
        ({"colour": "blue"}, "unknown availability field 'colour'"),
    ],
)
def test_from_json_rejects_with_a_clear_message(change: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"time_zone": "America/Chicago", "weekly": weekdays(("09:00", "17:00"))}
    data.update(change)
    with pytest.raises(InvalidInput) as caught:
        Availability.from_json(data)
    assert message in caught.value.message


def test_from_json_needs_an_object_with_a_zone_and_hours() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        Availability.from_json(["America/Chicago"])
    with pytest.raises(InvalidInput, match="time_zone and weekly"):
        Availability.from_json({"time_zone": "UTC"})


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(InvalidInput, match="overlap"):
        Availability(
            time_zone="UTC",
            weekly={0: ((dt.time(9), dt.time(12)), (dt.time(10), dt.time(11)))},
        )
    with pytest.raises(InvalidInput, match="not a day"):
        Availability(time_zone="UTC", weekly={7: ((dt.time(9), dt.time(12)),)})
