"""Attributes kept in an object's ``_state``: a compiled struct (``sfu._fastpath``) when
the compiled paths are in use, a Python object with the same fields otherwise."""

from __future__ import annotations

from typing import Any


def state_field(name: str, doc: str) -> property:
    """A property reading and writing ``self._state.<name>``."""

    def get(self: Any) -> Any:
        return getattr(self._state, name)

    def put(self: Any, value: Any) -> None:
        setattr(self._state, name, value)

    return property(get, put, doc=doc)
