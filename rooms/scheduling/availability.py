"""A neutral's availability (weekly hours in their own time zone, blocked days, the session
lengths they offer) and the open slots it leaves around the sessions already booked.

Times are kept the way people think of them: weekly windows and blocked days in the
neutral's zone, so "Mondays 09:00-17:00 in Chicago" stays 09:00 local across daylight
saving changes. Slots and booked intervals are UTC epoch seconds.

A slot of ``minutes`` is offered when

* it starts on the step grid counted from the start of one of the day's windows and its
  end (wall clock: start + ``minutes``) is inside that window;
* its local start time exists and is the first occurrence: starts in the spring-forward
  gap are skipped, and in the fall-back hour only the first (``fold=0``) instant is offered;
* its local day is not blocked;
* ``now + notice <= start <= now + horizon``;
* it keeps ``buffer_minutes`` clear of every busy interval: ``[start, end)`` of the slot does
  not meet ``[busy_start - buffer, busy_end + buffer)``.

``open_slots`` lists them; ``slot_problem`` says, for one proposed start, why it is not
offered, and agrees with ``open_slots`` (a start is open iff ``open_slots`` would list it).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rooms.errors import InvalidInput

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOWS_A_DAY = 6
MAX_BLOCKED_DAYS = 366
MAX_LENGTHS = 12
LENGTH_RANGE = (15, 720)
BUFFER_RANGE = (0, 240)
STEPS = (15, 30, 60)
NOTICE_RANGE = (0, 720)
HORIZON_RANGE = (1, 365)
MAX_LIMIT = 5000
JSON_KEYS = frozenset(
    {
        "time_zone",
        "weekly",
        "blocked_days",
        "lengths",
        "buffer_minutes",
        "step_minutes",
        "notice_hours",
        "horizon_days",
    }
)

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*$")

Window = tuple[dt.time, dt.time]


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: object) -> zoneinfo.ZoneInfo:
    """The IANA time zone called ``name``; ``InvalidInput`` if there is none."""
    if (
        not isinstance(name, str)
        or len(name) > 64
        or not _ZONE_NAME.match(name)
        or name not in _known_zones()
    ):
        raise InvalidInput(f"unknown time zone {str(name)[:64]!r} (use an IANA name)")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name)") from exc


def _minute_of_day(value: dt.time) -> int:
    return value.hour * 60 + value.minute


def _in_range(value: object, bounds: tuple[int, int], what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number")
    if not bounds[0] <= value <= bounds[1]:
        raise InvalidInput(f"{what} must be from {bounds[0]} to {bounds[1]}, not {value}")
    return value


@dataclass(frozen=True)
class Availability:
    """When a neutral takes sessions: weekly windows in their zone, blocked days, the
    session lengths offered, the buffer between sessions, the slot grid, and how soon and
    how far ahead a session may be booked. Checked on construction."""

    time_zone: str
    weekly: dict[int, tuple[Window, ...]]
    blocked_days: frozenset[dt.date] = frozenset()
    lengths: tuple[int, ...] = (60, 120, 180)
    buffer_minutes: int = 15
    step_minutes: int = 30
    notice_hours: int = 24
    horizon_days: int = 60

    def __post_init__(self) -> None:
        zone_named(self.time_zone)
        if not isinstance(self.weekly, Mapping):
            raise InvalidInput("weekly hours must map days to windows")
        for day, windows in self.weekly.items():
            self._check_windows(day, windows)
        if len(self.blocked_days) > MAX_BLOCKED_DAYS:
            raise InvalidInput(f"at most {MAX_BLOCKED_DAYS} blocked days")
        if not all(isinstance(day, dt.date) for day in self.blocked_days):
            raise InvalidInput("blocked days must be dates")
        if not self.lengths or len(self.lengths) > MAX_LENGTHS:
            raise InvalidInput(f"offer from 1 to {MAX_LENGTHS} session lengths")
        for length in self.lengths:
            _in_range(length, LENGTH_RANGE, "a session length (minutes)")
        if len(set(self.lengths)) != len(self.lengths):
            raise InvalidInput("session lengths must not repeat")
        _in_range(self.buffer_minutes, BUFFER_RANGE, "the buffer (minutes)")
        if self.step_minutes not in STEPS or isinstance(self.step_minutes, bool):
            raise InvalidInput(
                f"the slot step must be 15, 30 or 60 minutes, not {self.step_minutes}"
            )
        _in_range(self.notice_hours, NOTICE_RANGE, "the notice (hours)")
        _in_range(self.horizon_days, HORIZON_RANGE, "the booking horizon (days)")

    @staticmethod
    def _check_windows(day: object, windows: object) -> None:
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise InvalidInput(f"weekly hours: {day!r} is not a day (0 = Monday .. 6 = Sunday)")
        name = DAY_NAMES[day]
        if not isinstance(windows, tuple):
            raise InvalidInput(f"weekly hours on {name} must be a tuple of windows")
        if len(windows) > MAX_WINDOWS_A_DAY:
            raise InvalidInput(
                f"at most {MAX_WINDOWS_A_DAY} windows a day ({name} has {len(windows)})"
            )
        previous_end = -1
        for window in windows:
            if (
                not isinstance(window, tuple)
                or len(window) != 2
                or not all(isinstance(t, dt.time) for t in window)
            ):
                raise InvalidInput(f"a window on {name} must be (start, end) times")
            start, end = window
            if start.second or start.microsecond or end.second or end.microsecond:
                raise InvalidInput(f"windows on {name} must be in whole minutes")
            if start.tzinfo is not None or end.tzinfo is not None:
                raise InvalidInput(f"windows on {name} are local times, without a zone")
            if start >= end:
                raise InvalidInput(
                    f"on {name} the window {start:%H:%M}-{end:%H:%M} must start before it ends"
                )
            if _minute_of_day(start) < previous_end:
                raise InvalidInput(
                    f"windows on {name} overlap or are out of order (at {start:%H:%M})"
                )
            previous_end = _minute_of_day(end)

    @classmethod
    def from_json(cls, data: object) -> Availability:
        """Availability from its JSON form (see ``to_json``); ``InvalidInput`` saying what is
        wrong with anything malformed or out of range."""
        if not isinstance(data, dict):
            raise InvalidInput("availability must be a JSON object")
        unknown = set(data) - JSON_KEYS
        if unknown:
            raise InvalidInput(f"unknown availability field {sorted(map(str, unknown))[0]!r}")
        if "time_zone" not in data or "weekly" not in data:
            raise InvalidInput("availability needs a time_zone and weekly hours")
        weekly = _weekly_from_json(data["weekly"])
        blocked = _blocked_from_json(data.get("blocked_days", []))
        lengths = data.get("lengths", [60, 120, 180])
        if not isinstance(lengths, list):
            raise InvalidInput("lengths must be a list of minutes")
        if len(lengths) > MAX_LENGTHS:
            raise InvalidInput(f"offer from 1 to {MAX_LENGTHS} session lengths")
        return cls(
            time_zone=data["time_zone"],
            weekly=weekly,
            blocked_days=blocked,
            lengths=tuple(sorted(_in_range(n, LENGTH_RANGE, "a session length") for n in lengths)),
            buffer_minutes=data.get("buffer_minutes", 15),
            step_minutes=data.get("step_minutes", 30),
            notice_hours=data.get("notice_hours", 24),
            horizon_days=data.get("horizon_days", 60),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form read by ``from_json``."""
        return {
            "time_zone": self.time_zone,
            "weekly": {
                DAY_NAMES[day]: [[f"{s:%H:%M}", f"{e:%H:%M}"] for s, e in windows]
                for day, windows in sorted(self.weekly.items())
                if windows
            },
            "blocked_days": sorted(day.isoformat() for day in self.blocked_days),
            "lengths": list(self.lengths),
            "buffer_minutes": self.buffer_minutes,
            "step_minutes": self.step_minutes,
            "notice_hours": self.notice_hours,
            "horizon_days": self.horizon_days,
        }

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zone_named(self.time_zone)


def _clock(text: object, day: str) -> dt.time:
    found = _CLOCK.match(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidInput(f"on {day}, {str(text)[:20]!r} is not a time like 09:30")
    hour, minute = int(found.group(1)), int(found.group(2))
    if hour > 23 or minute > 59:
        raise InvalidInput(f"on {day}, {text} is not a time of day (00:00 to 23:59)")
    return dt.time(hour, minute)


def _weekly_from_json(weekly: object) -> dict[int, tuple[Window, ...]]:
    if not isinstance(weekly, dict):
        raise InvalidInput('weekly hours must be an object like {"mon": [["09:00", "17:00"]]}')
    result: dict[int, tuple[Window, ...]] = {}
    for name, windows in weekly.items():
        if name not in DAY_NAMES:
            raise InvalidInput(f"weekly hours: {str(name)[:20]!r} is not a day (mon .. sun)")
        if not isinstance(windows, list):
            raise InvalidInput(f"weekly hours on {name} must be a list of [start, end] pairs")
        if len(windows) > MAX_WINDOWS_A_DAY:
            raise InvalidInput(
                f"at most {MAX_WINDOWS_A_DAY} windows a day ({name} has {len(windows)})"
            )
        parsed = []
        for window in windows:
            if not isinstance(window, list) or len(window) != 2:
                raise InvalidInput(f"a window on {name} must be a [start, end] pair")
            parsed.append((_clock(window[0], name), _clock(window[1], name)))
        if parsed:
            result[DAY_NAMES.index(name)] = tuple(sorted(parsed))
    return result


def _blocked_from_json(days: object) -> frozenset[dt.date]:
    if not isinstance(days, list):
        raise InvalidInput("blocked_days must be a list of dates like 2027-01-01")
    if len(days) > MAX_BLOCKED_DAYS:
        raise InvalidInput(f"at most {MAX_BLOCKED_DAYS} blocked days")
    result = set()
    for text in days:
        if not isinstance(text, str) or not _DATE.match(text):
            raise InvalidInput(f"blocked day {str(text)[:20]!r} is not a date like 2027-01-01")
        try:
            result.add(dt.date.fromisoformat(text))
        except ValueError as exc:
            raise InvalidInput(f"blocked day {text} is not a real date") from exc
    return frozenset(result)


class _Busy:
    """Booked intervals widened by the buffer and merged, for fast overlap tests."""

    def __init__(self, busy: Sequence[tuple[float, float]], buffer: float) -> None:
        merged: list[list[float]] = []
        for start, end in sorted((float(s), float(e)) for s, e in busy):
            if not (math.isfinite(start) and math.isfinite(end)):
                raise InvalidInput("a busy interval is not a finite time")
            low, high = start - buffer, max(start, end) + buffer
            if merged and low <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        self._starts = [low for low, _ in merged]
        self._ends = [high for _, high in merged]

    def meets(self, start: float, end: float) -> bool:
        """Whether ``[start, end)`` meets a widened busy interval."""
        index = bisect.bisect_left(self._starts, end) - 1
        return index >= 0 and self._ends[index] > start


def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite time")
    return float(value)


def _check_length(av: Availability, minutes: int) -> None:
    if isinstance(minutes, bool) or minutes not in av.lengths:
        offered = ", ".join(str(n) for n in av.lengths)
        raise InvalidInput(f"{minutes!r} minutes is not a session length offered ({offered})")


def _instant(day: dt.date, minute: int, zone: zoneinfo.ZoneInfo) -> float | None:
    """The UTC epoch of a local wall time (first occurrence), or None if it does not exist."""
    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone)
    back = local.astimezone(dt.UTC).astimezone(zone)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return local.timestamp()


def open_slots(
    av: Availability,
    minutes: int,
    busy: Sequence[tuple[float, float]],
    *,
    now: float,
    start: float | None = None,
    end: float | None = None,
    limit: int = 500,
) -> list[float]:
    """UTC epoch starts of the open slots of ``minutes``, earliest first, at most ``limit``.
    ``start`` and ``end`` narrow the range to slots starting in ``[start, end)``."""
    _check_length(av, minutes)
    now = _finite(now, "now")
    limit = _in_range(limit, (1, MAX_LIMIT), "the slot limit")
    low = now + av.notice_hours * 3600
    high = now + av.horizon_days * 86400
    before = math.inf
    if start is not None:
        low = max(low, _finite(start, "the range start"))
    if end is not None:
        before = _finite(end, "the range end")
    taken = _Busy(busy, av.buffer_minutes * 60)
    zone = av.zone
    day = dt.datetime.fromtimestamp(low, zone).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(min(high, now + 366 * 86400), zone).date()
    slots: list[float] = []
    while day <= last:
        if day not in av.blocked_days:
            for window_start, window_end in av.weekly.get(day.weekday(), ()):
                first, stop = _minute_of_day(window_start), _minute_of_day(window_end)
                for minute in range(first, stop - minutes + 1, av.step_minutes):
                    instant = _instant(day, minute, zone)
                    if instant is None or instant < low or instant > high or instant >= before:
                        continue
                    if taken.meets(instant, instant + minutes * 60):
                        continue
                    slots.append(instant)
                    if len(slots) >= limit:
                        return slots
        day += dt.timedelta(days=1)
    return slots


def _notice(hours: int) -> str:
    return "1 hour's notice" if hours == 1 else f"{hours} hours' notice"


def slot_problem(
    av: Availability,
    start: float,
    minutes: int,
    busy: Sequence[tuple[float, float]],
    *,
    now: float,
) -> str | None:
    """None when a session of ``minutes`` starting at ``start`` (UTC epoch) can be booked,
    else the reason it cannot, in words for the person booking."""
    if isinstance(minutes, bool) or minutes not in av.lengths:
        return "not a session length offered"
    start, now = _finite(start, "the start"), _finite(now, "now")
    if start < now:
        return "in the past"
    if start < now + av.notice_hours * 3600:
        return f"too soon (needs {_notice(av.notice_hours)})"
    if start > now + av.horizon_days * 86400:
        return "beyond the booking horizon"
    zone = av.zone
    local = dt.datetime.fromtimestamp(start, zone)
    if local.date() in av.blocked_days:
        return "on a blocked day"
    minute = local.hour * 60 + local.minute
    fits = [
        (_minute_of_day(s), _minute_of_day(e))
        for s, e in av.weekly.get(local.weekday(), ())
        if _minute_of_day(s) <= minute and minute + minutes <= _minute_of_day(e)
    ]
    if not fits:
        return "outside the neutral's hours"
    if local.second or local.microsecond or (minute - fits[0][0]) % av.step_minutes:
        return f"not at a slot start (every {av.step_minutes} minutes from the start of the hours)"
    if _instant(local.date(), minute, zone) != start:
        return "outside the neutral's hours"  # the repeated hour when clocks go back
    if _Busy(busy, av.buffer_minutes * 60).meets(start, start + minutes * 60):
        return "taken"
    return None


def slot_is_open(
    av: Availability,
    start: float,
    minutes: int,
    busy: Sequence[tuple[float, float]],
    *,
    now: float,
) -> bool:
    """Whether a session of ``minutes`` starting at ``start`` (UTC epoch) can be booked."""
    return slot_problem(av, start, minutes, busy, now=now) is None
