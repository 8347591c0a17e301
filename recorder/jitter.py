"""A small jitter buffer: puts one RTP stream's packets back in order and cuts it into
frames, waiting a little for late and retransmitted packets before declaring them lost.

Sequence numbers are extended past their 16-bit wrap.  A video frame is complete when
every packet from the one after the previous frame's marker up to its own marker has
arrived; an audio packet is a frame of its own.  When a gap outlives ``max_delay``
(or the buffer holds ``max_packets``), the gap is declared lost: the partial frames
around it are dropped, and the next frame released carries ``after_loss=True`` so the
recorder can wait for a keyframe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class FramePackets:
    """The payloads of one frame, in order, with its RTP timestamp."""

    timestamp: int
    payloads: list[bytes]
    after_loss: bool


class JitterBuffer:
    """Reorders one stream (one SSRC) and releases complete frames in order.

    ``starts_frame(payload)`` (video) recognises the first packet of a frame, so that
    after a loss the buffer can resume on the next frame without waiting for a marker.
    """

    def __init__(
        self,
        *,
        frames_end_on_marker: bool,
        starts_frame: Callable[[bytes], bool] | None = None,
        max_delay: float = 0.3,
        max_packets: int = 1024,
    ) -> None:
        self._frames_end_on_marker = frames_end_on_marker
        self._starts_frame = starts_frame
        self._max_delay = max_delay
        self._max_packets = max_packets
        #: extended sequence number -> (timestamp, marker, payload)
        self._packets: dict[int, tuple[int, int, bytes]] = {}
        self._next: int | None = None  # next extended sequence number to release
        self._highest = 0
        self._gap_since: float | None = None
        self._resync = False  # after a loss: drop packets until a frame start
        self._loss = False
        self.packets_lost = 0
        self.packets_late = 0
        self.frames_dropped = 0

    def push(
        self, seq: int, timestamp: int, marker: int, payload: bytes, now: float
    ) -> list[FramePackets]:
        """Add one packet (``now`` in seconds, any monotonic clock); return the frames
        it completes."""
        if self._next is None:
            self._next = self._highest = seq
            self._resync = self._frames_end_on_marker  # may join in the middle of a frame
        delta = (seq - self._highest) & 0xFFFF
        ext = self._highest + delta if delta < 0x8000 else self._highest + delta - 0x10000
        if ext - self._highest >= self._max_packets or self._next - ext >= self._max_packets:
            # a jump the buffer cannot bridge (restart, long outage): start over there
            frames = self._release(None)
            self._declare_lost(max(ext, self._next))
            self._next = self._highest = ext
            self._resync = self._frames_end_on_marker
            self._packets[ext] = (timestamp, marker, payload)
            return frames + self._release(now)
        if ext < self._next:
            self.packets_late += 1  # a duplicate, or too late: already released or lost
            return []
        if ext > self._highest:
            self._highest = ext
        self._packets[ext] = (timestamp, marker, payload)
        return self._release(now)

    def flush(self) -> list[FramePackets]:
        """Release what is complete; drop the rest (the stream ended)."""
        frames = self._release(None)
        if self._packets:
            self.frames_dropped += 1
            self._packets.clear()
        return frames

    # --- internals ----------------------------------------------------------------------

    def _release(self, now: float | None) -> list[FramePackets]:
        frames: list[FramePackets] = []
        packets = self._packets
        while packets:
            assert self._next is not None
            nxt = self._next
            if nxt not in packets:
                if not self._give_up(now, nxt):
                    break
                continue
            if self._resync:
                timestamp, marker, payload = packets[nxt]
                if self._starts_frame is not None and self._starts_frame(payload):
                    self._resync = False
                else:
                    del packets[nxt]
                    self._next = nxt + 1
                    if marker:
                        self._resync = False
                    continue
            if not self._frames_end_on_marker:
                timestamp, _, payload = packets.pop(nxt)
                self._next = nxt + 1
                frames.append(FramePackets(timestamp, [payload], self._loss))
                self._loss = False
                self._gap_since = None
                continue
            end = nxt
            while end in packets and not packets[end][1]:
                end += 1
            if end not in packets:
                if end > self._highest or not self._give_up(now, end):
                    break
                continue
            timestamp = packets[nxt][0]
            payloads = []
            consistent = True
            for i in range(nxt, end + 1):
                ts, _, payload = packets.pop(i)
                consistent = consistent and ts == timestamp
                payloads.append(payload)
            self._next = end + 1
            self._gap_since = None
            if consistent:
                frames.append(FramePackets(timestamp, payloads, self._loss))
                self._loss = False
            else:
                self.frames_dropped += 1
                self._loss = True
        return frames

    def _give_up(self, now: float | None, hole: int) -> bool:
        """Packet ``hole`` is missing while later ones arrived: wait for it, or declare
        it lost (True: the state moved on and releasing may continue)."""
        if now is not None:
            if self._gap_since is None:
                self._gap_since = now
            if (
                now - self._gap_since < self._max_delay
                and self._highest - (self._next or 0) < self._max_packets
            ):
                return False
        present = [s for s in self._packets if s > hole]
        if not present:
            return False
        self._declare_lost(min(present))
        return True

    def _declare_lost(self, resume: int) -> None:
        """Everything before ``resume`` is lost; resume there, on a frame start."""
        assert self._next is not None
        dropped = [s for s in self._packets if s < resume]
        for s in dropped:
            del self._packets[s]
        self.packets_lost += max(0, resume - self._next - len(dropped))
        if resume > self._next or dropped:
            if self._frames_end_on_marker:
                self.frames_dropped += 1
            self._loss = True
        self._next = max(self._next, resume)
        self._resync = self._frames_end_on_marker
        self._gap_since = None
