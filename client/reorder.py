"""Putting a received RTP stream back in order before a check sees it, as a browser's
jitter buffer does before its decoder.

A subscriber that NACKs (``client.receiver_feedback``) gets its lost packets again as
retransmissions (RFC 4588 RTX: another SSRC and payload type, the original sequence
number in the payload's first two bytes), later than the packets that followed them.
:class:`PacketReorder` sits between the receiver and a check
(:class:`client.vp8_check.Vp8Check`):

* a retransmission is unwrapped into the packet it repairs (the media SSRC, the original
  sequence number; timestamp and marker bit are the original's, RFC 4588 §4);
* packets behind a sequence gap are held until the gap is filled, then released in
  order; a gap still open ``max_delay`` seconds after the first packet behind it was held
  (a little longer than the feedback's 0.3 s before it gives a NACK up) is a loss: the
  held packets are released and the check sees the gap;
* a packet older than what was released (a duplicate, a retransmission too late) is
  passed on, for the check to count.

Packets are hostile input: one that is not RTP, of a payload type other than the two
given, or a retransmission too short to hold a sequence number (or before any media
packet) is dropped and counted (:attr:`PacketReorder.dropped`); at most ``max_held``
packets are held (more: the oldest gap is given up at once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .rtp_packet import parse_rtp

#: ``deliver(ssrc, sequence_number, timestamp, marker, payload)``: what the check is fed.
Deliver = Callable[[int, int, int, bool, bytes], None]

#: A jump this far ahead is a stream starting its numbers afresh, not a gap.
MAX_GAP = 3000
SEQ_MOD = 1 << 16


class PacketReorder:
    """Reorders one received stream (``media_payload_type``, with its retransmissions of
    ``rtx_payload_type``) for ``deliver`` (see the module).  Owns the timer that gives a
    gap up when no packet arrives to do it."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        media_payload_type: int,
        rtx_payload_type: int | None = None,
        max_delay: float = 0.35,
        max_held: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deliver = deliver
        self._media_payload_type = media_payload_type
        self._rtx_payload_type = rtx_payload_type
        self._max_delay = max_delay
        self._max_held = max_held
        self._clock = clock
        self._ssrc: int | None = None
        self._expected: int | None = None  # the next sequence number to release
        self._held: dict[int, tuple[int, bool, bytes]] = {}  # seq -> (timestamp, marker, payload)
        self._held_since: float | None = None  # when the oldest open gap began to hold
        self._timer: asyncio.TimerHandle | None = None
        #: Retransmissions unwrapped into the packet they repair.
        self.unwrapped = 0
        #: Packets released after waiting behind a gap that was then filled.
        self.reordered = 0
        #: Gaps given up (released with the numbers missing).
        self.gaps_given_up = 0
        #: Packets not passed on (not RTP, another payload type, a retransmission too
        #: short or before any media packet).
        self.dropped = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """One received RTP packet of the stream (media or retransmission), whole."""
        packet = parse_rtp(data)
        if packet is None:
            self.dropped += 1
            return
        payload_type = packet.payload_type
        if payload_type == self._rtx_payload_type:
            if len(packet.payload) < 2 or self._ssrc is None:
                self.dropped += 1
                return
            self.unwrapped += 1
            seq = int.from_bytes(packet.payload[:2], "big")
            self._arrive(self._ssrc, seq, packet.timestamp, packet.marker, packet.payload[2:])
        elif payload_type == self._media_payload_type:
            self._arrive(
                packet.ssrc,
                packet.sequence_number,
                packet.timestamp,
                packet.marker,
                packet.payload,
            )
        else:  # another payload type: not this stream's
            self.dropped += 1

    def _arrive(self, ssrc: int, seq: int, timestamp: int, marker: bool, payload: bytes) -> None:
        if ssrc != self._ssrc:  # a new stream: what waited for the old one goes first
            self.flush()
            self._ssrc, self._expected = ssrc, None
        expected = self._expected
        if expected is None:
            self._release(ssrc, seq, timestamp, marker, payload)
            return
        ahead = (seq - expected) % SEQ_MOD
        if ahead == 0:
            self._release(ssrc, seq, timestamp, marker, payload)
            self._drain()
        elif ahead < MAX_GAP:
            if seq not in self._held:
                self._held[seq] = (timestamp, marker, payload)
            if self._held_since is None:
                self._held_since = self._clock()
                self._arm()
            if len(self._held) > self._max_held:
                self._give_up()
            else:
                self._expire()
        elif SEQ_MOD - ahead <= MAX_GAP:  # behind: late, or a duplicate; the check counts it
            self._deliver(ssrc, seq, timestamp, marker, payload)
        else:  # a jump: the sender numbers afresh
            self.flush()
            self._release(ssrc, seq, timestamp, marker, payload)

    def _release(self, ssrc: int, seq: int, timestamp: int, marker: bool, payload: bytes) -> None:
        self._expected = (seq + 1) % SEQ_MOD
        self._deliver(ssrc, seq, timestamp, marker, payload)

    def _drain(self) -> None:
        """Release what the gap held, in order, up to the next gap."""
        ssrc = self._ssrc
        assert ssrc is not None
        while self._expected in self._held:
            seq = self._expected
            timestamp, marker, payload = self._held.pop(seq)
            self.reordered += 1
            self._release(ssrc, seq, timestamp, marker, payload)
        if not self._held:
            self._held_since = None
            self._disarm()
        elif self._held_since is not None:
            self._held_since = self._clock()  # the next gap waits from now
            self._arm()

    def _give_up(self) -> None:
        """The oldest gap is a loss: release from the first packet held behind it."""
        if not self._held or self._expected is None:
            return
        self.gaps_given_up += 1
        expected = self._expected
        self._expected = min(self._held, key=lambda s: (s - expected) % SEQ_MOD)
        self._drain()

    def _expire(self) -> None:
        since = self._held_since
        if since is not None and self._clock() - since >= self._max_delay:
            self._give_up()

    def _arm(self) -> None:
        self._disarm()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # fed outside an event loop (a test): arrivals expire it
            return
        self._timer = loop.call_later(self._max_delay, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._expire()
        if self._held and self._timer is None:
            self._arm()

    def flush(self) -> None:
        """Release everything held, in order (the gaps left open)."""
        while self._held:
            self._give_up()
        self._held_since = None
        self._disarm()

    def close(self) -> None:
        self._disarm()
        self._held.clear()
