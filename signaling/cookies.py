"""The cookies a Caucus server sets: named here because the HTTP API sets and reads them
(``signaling.http.access``) and socket.io reads the session's at connect
(``signaling.realtime.events``)."""

from __future__ import annotations

SESSION_COOKIE = "__Host-caucus_session"
#: A browser that completed a sign-in (``rooms.accounts.devices``): its own throttle, see accounts.
DEVICE_COOKIE = "__Host-caucus_device"
CSRF_COOKIE = "__Host-caucus_csrf"
