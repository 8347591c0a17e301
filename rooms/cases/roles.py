"""The roles a member holds in a case."""

from __future__ import annotations

CASE_ROLES = ("neutral", "co_neutral", "party", "counsel", "observer")
INVITABLE_ROLES = ("co_neutral", "party", "counsel", "observer")
#: The roles that run a case: open and close rooms, move people, manage spaces.
NEUTRAL_ROLES = ("neutral", "co_neutral")
