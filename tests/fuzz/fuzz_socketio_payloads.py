"""Fuzz target: the payload models of every socket.io event.

Every input is the JSON text of one event payload, as python-socketio decodes it (input
that is not JSON never reaches a namespace).  The payload goes to the model of every
event the namespaces declare (``@event`` in ``signaling/realtime/namespaces/``:
``/case``, ``/media`` with its live-room controls, ``/spaces``, ``/recording``), as
``EventNamespace.trigger_event`` validates it, and a refusal is turned into the
acknowledgement the client receives (``socket_error``), which must be JSON.

Documented rejection: pydantic's ``ValidationError`` (answered ``invalid_payload``).
A crash is any other exception (it would be answered ``internal_error`` and logged with
a traceback), an acknowledgement that is not ``invalid_payload`` or not JSON, or an
accepted payload that does not survive a JSON round trip.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports(include=["signaling"]):
    from pydantic import BaseModel, ValidationError

    from signaling.errors import socket_error
    from signaling.realtime.namespaces.case import CaseNamespace
    from signaling.realtime.namespaces.media import MediaNamespace
    from signaling.realtime.namespaces.recording import RecordingNamespace
    from signaling.realtime.namespaces.spaces import SpacesNamespace

#: The forwarding namespaces of a node with media workers declare the events of
#: ``/media`` and ``/recording`` (``EventNamespace.declarations``).
NAMESPACES = (CaseNamespace, SpacesNamespace, RecordingNamespace, MediaNamespace)


def declared_events() -> dict[str, type[BaseModel]]:
    """Event name -> payload model, as ``EventNamespace.__init__`` collects them (the
    namespace's own and its components', such as ``/media``'s live-room controls)."""
    events: dict[str, type[BaseModel]] = {}
    for namespace in NAMESPACES:
        for name, spec in namespace.declarations().items():
            events[f"{namespace.__name__}:{name}"] = spec.model
    return events


EVENTS = declared_events()
assert len(EVENTS) >= 20, sorted(EVENTS)


def TestOneInput(data: bytes) -> None:
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        return  # not a socket.io event's payload: the packet decoder refuses it
    for model in EVENTS.values():
        try:
            accepted = model.model_validate(payload)
        except ValidationError as exc:
            ack = socket_error(exc)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
            json.dumps(ack)
            continue
        again = model.model_validate(json.loads(json.dumps(accepted.model_dump(mode="json"))))
        assert again == accepted, (again, accepted)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
