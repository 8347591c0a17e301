"""Caucus SFU: forwards RTP packets between participants without decoding them.

Vocabulary (mediasoup's): a :class:`Worker` owns :class:`Router` s (one per live room)
and :class:`Transport` s (one per peer connection); a :class:`Producer` is a published
track, a :class:`Consumer` one (subscriber, producer) pair.  See ``sfu/README.md``.

The media stack (aiortc, aioice, pylibsrtp) is loaded when one of these classes is first
used, not when ``sfu`` is imported: a signaling node imports ``sfu.errors``,
``sfu.settings`` and ``sfu.heap`` without loading it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import rtc
    from .consumer import Consumer
    from .errors import (
        InvalidSdp,
        InvalidState,
        MediaError,
        NoFreePort,
        NoSupportedCodec,
        NotFound,
    )
    from .producer import Producer
    from .router import Router
    from .settings import IceServer, MediaSettings
    from .transport import PUBLISH, SUBSCRIBE, Transport
    from .worker import Worker

#: public name -> the module that defines it
_HOMES = {
    "Consumer": ".consumer",
    "InvalidSdp": ".errors",
    "InvalidState": ".errors",
    "MediaError": ".errors",
    "NoFreePort": ".errors",
    "NoSupportedCodec": ".errors",
    "NotFound": ".errors",
    "Producer": ".producer",
    "Router": ".router",
    "IceServer": ".settings",
    "MediaSettings": ".settings",
    "PUBLISH": ".transport",
    "SUBSCRIBE": ".transport",
    "Transport": ".transport",
    "Worker": ".worker",
}

__all__ = [
    "PUBLISH",
    "SUBSCRIBE",
    "Consumer",
    "IceServer",
    "InvalidSdp",
    "InvalidState",
    "MediaError",
    "MediaSettings",
    "NoFreePort",
    "NoSupportedCodec",
    "NotFound",
    "Producer",
    "Router",
    "Transport",
    "Worker",
    "rtc",
]


def __getattr__(name: str) -> Any:
    if name == "rtc":
        return importlib.import_module(".rtc", __name__)
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sfu' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
