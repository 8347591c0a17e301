"""The signed-in world of users and cases from the signaling tests, for the client's tests
against an in-process server."""

from tests.signaling.conftest import world

__all__ = ["world"]
