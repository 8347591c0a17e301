"""Caucus SFU: forwards RTP packets between participants without decoding them.

Vocabulary (mediasoup's): a :class:`Worker` owns :class:`Router` s (one per live room)
and :class:`Transport` s (one per peer connection); a :class:`Producer` is a published
track, a :class:`Consumer` one (subscriber, producer) pair.  See ``sfu/README.md``.
"""

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
]
