"""Whole frames of a publisher's clip sent in one compiled call (the load client's
publishers, ``client/direct_publish.py``): :class:`FrameTemplate` and :func:`send_frame`
on an SFU :class:`~sfu.rtc.writer.RtpWriter`'s compiled sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sfu.rtc.native import FASTPATH, NATIVE
from sfu.rtc.writer import FAST_NOT_BOUND, RtpWriter

if FASTPATH:
    _fast_send_frame = NATIVE.lib.caucus_send_frame


def new_frame_batch() -> Any:
    """Scratch buffers for :func:`send_frame` (``caucus_batch``, 32 KiB): one
    per event loop is enough, a frame is sent in one call; not shared between threads
    (the compiled call runs without the GIL).  ``None`` without the compiled path."""
    return NATIVE.ffi.new("caucus_batch *") if FASTPATH else None


class FrameTemplate:
    """One frame of a publisher's clip for :func:`send_frame`: the packets'
    tails (extension block and payload, without the stamp) one after the other in C
    memory, their lengths, and what every frame of the stream shares."""

    __slots__ = (
        "batch",
        "count",
        "first_byte",
        "lengths",
        "payload_type",
        "picture_id_offset",
        "sent_bytes",
        "size",
        "ssrc",
        "stamped",
        "tails",
    )

    def __init__(
        self,
        tails: Sequence[bytes],
        *,
        batch: Any,
        first_byte: int,
        payload_type: int,
        ssrc: int,
        picture_id_offset: int | None,
        stamped: bool = True,
        sent_bytes: Any = None,
    ) -> None:
        if not FASTPATH:
            raise RuntimeError("frames are sent whole on the compiled path only")
        ffi = NATIVE.ffi
        joined = b"".join(tails)
        self.tails = ffi.new("unsigned char[]", joined or b"\0")
        #: the bytes in :attr:`tails`: the compiled call sends no tail that runs past them
        self.size = len(joined)
        self.lengths = ffi.new("int[]", [len(t) for t in tails] or [0])
        self.count = len(tails)
        self.batch = batch
        self.first_byte = first_byte
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.picture_id_offset = -1 if picture_id_offset is None else picture_id_offset
        self.stamped = int(stamped)
        #: where the compiled call leaves the sent packets' RTP bytes (may be shared)
        self.sent_bytes = ffi.new("int *") if sent_bytes is None else sent_bytes


def send_frame(
    writer: RtpWriter, frame: FrameTemplate, seq: int, timestamp: int, picture_id: int
) -> int:
    """Send one frame of a publisher through ``writer``'s compiled sink in one call
    (``caucus_send_frame``, see :class:`FrameTemplate`): its packets numbered from
    ``seq``, the marker bit and the stamp on the last, ``picture_id`` written where the
    template says.  Returns the packets sent (their RTP bytes in
    ``frame.sent_bytes[0]``).  Only on the compiled path (``writer.native``);
    ``writer.forward`` sends packet by packet otherwise."""
    sink = writer.sink
    for _attempt in range(2):  # once more after binding a sink that was not bound
        sent = _fast_send_frame(
            sink,
            frame.batch,
            frame.first_byte,
            frame.payload_type,
            seq,
            timestamp,
            frame.ssrc,
            frame.tails,
            frame.size,
            frame.lengths,
            frame.count,
            frame.picture_id_offset,
            picture_id,
            frame.stamped,
            frame.sent_bytes,
        )
        if sent != FAST_NOT_BOUND or not (writer.bind() and writer.native):
            break
    return sent if sent > 0 else 0
