"""Publishing the load client's stamped clips straight to the socket, packetized once.

aiortc's own sender costs some 100-160 µs of CPU per RTP packet (a coroutine chain per
frame, its packetizer, ``RtpPacket.serialize``, its SRTP and aioice send path), so a
load client publishing through it saturates its core before the server it measures.
Here the clips of :mod:`client.stamped` are split into RTP payloads once
(:func:`packetize_opus`, :func:`packetize_vp8`), and a :class:`DirectPublisher` sends
them through the SFU's synchronous writer (:class:`sfu.rtc.writer.RtpWriter`: the
12-byte header packed into its own buffer, libsrtp in place, one ``sendto``).  Per frame,
only the stamp (the send time, :func:`client.stamped.stamp`) is appended to the last
payload; per packet, nothing is encoded besides the writer's header (and, for VP8, the
two bytes of the picture ID, written into the pre-built payload: a picture ID that went
back every time the clip loops would make a browser's receiver drop frames as old).

The publisher still negotiates through aiortc: one send-only transceiver per clip, whose
sender is given an :class:`~sfu.rtc.hooks.IdleTrack` (its RTP loop never gets a
frame) and whose RTCP is silenced (:func:`~sfu.rtc.hooks.intercept_sender_rtcp`).
The packets use the SSRC and payload type aiortc negotiated for that sender and the
``mid`` header extension (built once, with the connection's negotiated extension ids).

On the wire this is what aiortc's sender makes of
:class:`~client.stamped.StampedOpusTrack` and :class:`~client.stamped.StampedVideoTrack`:
the same payloads (VP8 split as aiortc's packetizer splits it, its 4-byte payload
descriptor with a 15-bit picture ID that grows by one per frame), the marker bit on a
frame's last packet (so on every Opus packet, as aiortc sets it), RTP timestamps 960
(20 ms at 48 kHz) and 3000 (one frame at 30 fps, 90 kHz) apart, random initial sequence
number and timestamp.  Not sent: the abs-send-time extension (the SFU writes its own),
retransmissions; NACKs and keyframe requests are ignored (the VP8 clip has a keyframe
every second), and sender reports are sent only for streams given a CNAME.

A stream may also be sent with an SSRC of its own and an ``rtp-stream-id`` (its RID,
RFC 8852): the simulcast publisher (:mod:`client.simulcast`) sends three such streams on
one transceiver, each paused, resumed and restarted on its clip's keyframe by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.vpx import PACKET_MAX, VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
)

from sfu import rtc
from sfu.rtc.native import new_int
from sfu.rtc.writer import RtpWriter

from .frames import FrameTemplate, new_frame_batch, send_frame
from .media import VIDEO_CLOCK_RATE
from .simulcast_sdp import RID_URI
from .stamped import (
    AUDIO_FRAME_SAMPLES,
    AUDIO_RATE,
    STAMP_SIZE,
    opus_with_padding,
    stamp,
    stampable_vp8,
)

VIDEO_FPS = 30
#: Where VP8's 15-bit picture ID sits in each of :func:`vp8_payloads`'s payloads: after
#: the descriptor's first byte (X=1) and its extension byte (I=1).
VP8_PICTURE_ID_OFFSET = 2
_VP8_DESCRIPTOR_SIZE = 4
_pack_picture_id = struct.Struct("!H").pack_into
#: Seconds between the sender reports of a stream that sends them.
SENDER_REPORT_INTERVAL = 1.0
#: Seconds from the NTP epoch (1900) to the Unix epoch.
_NTP_OFFSET = 2_208_988_800
_SDES_CNAME = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PacketizedClip:
    """A clip split into RTP payloads once, looped by :class:`DirectPublisher`.

    ``frames`` holds each frame's payloads in order; the last payload of a frame lacks
    the :data:`~client.stamped.STAMP_SIZE`-byte stamp appended when the frame is sent.
    """

    kind: str
    #: The codec the payloads are for (the negotiated codec must match).
    mime_type: str
    frames: tuple[tuple[bytes, ...], ...]
    #: Seconds between frames, and RTP clock ticks between their timestamps.
    interval: float
    timestamp_step: int
    #: Offset of the 15-bit picture ID in every payload (VP8), else ``None``.
    picture_id_offset: int | None = None


def packetize_opus(clip: list[bytes]) -> PacketizedClip:
    """One RTP payload per 20 ms Opus packet (code 0), each made a padded code-3 packet
    (:func:`~client.stamped.opus_with_padding`) whose padding is the stamp."""
    return PacketizedClip(
        kind="audio",
        mime_type="audio/opus",
        frames=tuple((opus_with_padding(packet),) for packet in clip),
        interval=AUDIO_FRAME_SAMPLES / AUDIO_RATE,
        timestamp_step=AUDIO_FRAME_SAMPLES,
    )


def vp8_payloads(frame: bytes, picture_id: int = 0) -> list[bytes]:
    """``frame`` split into RTP payloads as aiortc's VP8 packetizer splits it: pieces of
    at most ``PACKET_MAX`` bytes with their payload descriptor (RFC 7741: X=1, S on the
    first piece, partition 0, a 15-bit ``picture_id`` in each)."""
    descriptor = VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=picture_id)
    payloads: list[bytes] = []
    pos = 0
    while pos < len(frame):
        head = bytes(descriptor)
        size = min(len(frame) - pos, PACKET_MAX - len(head))
        payloads.append(head + frame[pos : pos + size])
        descriptor.partition_start = 0
        pos += size
    return payloads


def packetize_vp8(clip: list[bytes], fps: int = VIDEO_FPS) -> PacketizedClip:
    """Each frame padded by :func:`~client.stamped.stampable_vp8`, followed by room for
    the stamp, split by :func:`vp8_payloads`; the stamp's room is then cut off the last
    payload, which the padding guarantees to hold all of it."""
    frames = []
    for frame in clip:
        payloads = vp8_payloads(stampable_vp8(frame) + bytes(STAMP_SIZE))
        last = payloads[-1]
        if len(last) - _VP8_DESCRIPTOR_SIZE < STAMP_SIZE:
            raise ValueError("the stamp would be split between two packets")
        payloads[-1] = last[:-STAMP_SIZE]
        frames.append(tuple(payloads))
    return PacketizedClip(
        kind="video",
        mime_type="video/VP8",
        frames=tuple(frames),
        interval=1 / fps,
        timestamp_step=VIDEO_CLOCK_RATE // fps,
        picture_id_offset=VP8_PICTURE_ID_OFFSET,
    )


def _ignore_rtcp(_packet: AnyRtcpPacket) -> None:
    """The publisher does not act on feedback: no history to retransmit from, and the
    clip's next keyframe is at most a second away."""


class PublishedStream:
    """One stream of a :class:`DirectPublisher`: what it sends with, and what it sent.

    Frames are due on a fixed grid (``interval`` apart from the publisher's start); a
    stream sends at most one frame per wake-up, that of the latest slot due, so a late
    publisher skips slots (counted in ``skipped``; their RTP timestamps are skipped too)
    instead of catching up in a burst.  The clip's frames themselves are never skipped:
    VP8 delta frames need the frames before them.

    By default a stream sends with the SSRC aiortc announced for the transceiver's sender
    and the ``mid`` extension; ``ssrc``, ``rid`` and ``header_extensions`` (the
    negotiated extensions plus ``rtp-stream-id``) make it one of several streams of a
    simulcast transceiver.  :meth:`pause` stops it sending (its slots pass, its RTP
    timestamps go on), :meth:`resume` and :meth:`restart` make its next frame the clip's
    first (a keyframe, for the VP8 clips here).  With a ``cname`` it sends an RTCP
    sender report (and SDES CNAME) every :data:`SENDER_REPORT_INTERVAL` seconds while it
    sends, as a browser does, so that a receiver can relate its RTP clock to wall time.
    """

    __slots__ = (
        "_first_byte",
        "_frames",
        "_header_size",
        "_index",
        "_interval",
        "_native",
        "_octets",
        "_picture_id",
        "_picture_id_offset",
        "_seq",
        "_slot",
        "_start",
        "_step",
        "_timestamp_origin",
        "_writer",
        "bytes",
        "cname",
        "due",
        "frames",
        "kind",
        "mid",
        "packets",
        "paused",
        "payload_type",
        "restarts",
        "rid",
        "skipped",
        "ssrc",
        "transceiver",
    )

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        clip: PacketizedClip,
        *,
        ssrc: int | None = None,
        rid: str | None = None,
        header_extensions: Sequence[RTCRtpHeaderExtensionParameters] | None = None,
        cname: str | None = None,
    ) -> None:
        """Read what aiortc negotiated for ``transceiver``'s sender; build each packet's
        ``tail`` (the ``mid`` extension block, then the payload) once.

        ``ssrc`` replaces the sender's SSRC; ``rid`` adds the ``rtp-stream-id`` element,
        whose id ``header_extensions`` (default: the negotiated ones) must hold;
        ``cname`` turns sender reports on."""
        if not clip.frames:
            raise ValueError("an empty clip")
        codecs = [
            c
            for c in rtc.negotiated_codecs(transceiver)
            if c.mimeType.lower() != f"{clip.kind}/rtx"
        ]
        if not codecs or codecs[0].mimeType.lower() != clip.mime_type.lower():
            negotiated = codecs[0].mimeType if codecs else None
            raise ValueError(f"negotiated {negotiated} to send a {clip.mime_type} clip")
        self.transceiver = transceiver
        self.kind = clip.kind
        self.mid = transceiver.mid
        self.ssrc = rtc.sender_ssrcs(transceiver.sender)[0] if ssrc is None else ssrc
        self.rid = rid
        self.cname = cname
        payload_type = codecs[0].payloadType
        if payload_type is None:
            raise ValueError(f"no payload type negotiated for {clip.mime_type}")
        self.payload_type: int = payload_type
        if header_extensions is None:
            header_extensions = rtc.negotiated_header_extensions(transceiver)
        if rid is not None and not any(e.uri == RID_URI for e in header_extensions):
            raise ValueError(f"no {RID_URI} extension id to send rid {rid!r} with")
        extensions = HeaderExtensionsMap()
        extensions.configure(RTCRtpParameters(headerExtensions=list(header_extensions)))
        probe = RtpPacket(payload_type=self.payload_type)
        probe.extensions.mid = self.mid
        probe.extensions.rtp_stream_id = rid
        header = probe.serialize(extensions)
        self._first_byte = header[0]  # V=2, and X when the mid extension was negotiated
        block = header[12:]
        self._header_size = len(header)
        self._picture_id_offset = (
            None if clip.picture_id_offset is None else len(block) + clip.picture_id_offset
        )
        tail = bytes if self._picture_id_offset is None else bytearray
        self._frames = [[tail(block + payload) for payload in frame] for frame in clip.frames]
        self._interval = clip.interval
        self._step = clip.timestamp_step
        self._seq = random.getrandbits(15)  # as aiortc: far from wrapping at first
        self._timestamp_origin = random.getrandbits(32)
        self._picture_id = random.getrandbits(15)
        self._writer: RtpWriter | None = None
        #: each frame as one compiled call's template, when the writer is compiled
        self._native: list[FrameTemplate] | None = None
        self._start = 0.0
        self._slot = 0
        self._index = 0
        self.due = math.inf
        #: RTP packets and bytes (header, extension, payload; before SRTP) that left.
        self.packets = 0
        self.bytes = 0
        #: Frames whose last packet left, and slots skipped because the sender was late.
        self.frames = 0
        self.skipped = 0
        self._octets = 0  # payload bytes, for sender reports
        #: Not sending (see :meth:`pause`); times :meth:`restart` took effect.
        self.paused = False
        self.restarts = 0

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self.transceiver.sender.transport

    def begin(self, writer: RtpWriter, start: float, batch: Any = None) -> None:
        """Send through ``writer``, the first frame due at ``start`` (``time.monotonic()``).

        With a ``batch`` (:func:`~client.frames.new_frame_batch`) and a compiled
        writer, each frame leaves in one compiled call (header, picture ID, stamp, SRTP,
        one ``sendmmsg``) instead of a call per packet."""
        self._writer = writer
        self._start = start
        self._slot = 0
        self.due = start
        self._native = None
        if batch is not None and getattr(writer, "native", False):
            sent_bytes = new_int()
            self._native = [
                FrameTemplate(
                    [bytes(tail) for tail in tails],
                    batch=batch,
                    first_byte=self._first_byte,
                    payload_type=self.payload_type,
                    ssrc=self.ssrc,
                    picture_id_offset=self._picture_id_offset,
                    sent_bytes=sent_bytes,
                )
                for tails in self._frames
            ]

    def pause(self) -> None:
        """Stop sending: the stream's slots pass without a packet (as a browser stops an
        encoding it was told is inactive); :meth:`resume` starts it again."""
        self.paused = True

    def resume(self) -> None:
        """Send again, from the clip's first frame (a receiver needs a keyframe)."""
        if self.paused:
            self.paused = False
            self.restart()

    def restart(self) -> None:
        """Make the next frame sent the clip's first (the keyframe of the VP8 clips):
        the answer to a keyframe request.  Timestamps and picture IDs go on."""
        if self._index % len(self._frames):
            self._index = 0
            self.restarts += 1

    def timestamp_at(self, moment: float) -> int:
        """The RTP timestamp of ``moment`` (``time.monotonic()``) on the stream's clock."""
        ticks = round((moment - self._start) / self._interval * self._step)
        return (self._timestamp_origin + ticks) & 0xFFFFFFFF

    def sender_report(self, moment: float, wall: float) -> bytes | None:
        """An RTCP compound (SR, SDES CNAME) for ``moment`` (``time.monotonic()``),
        whose wall-clock time is ``wall`` (``time.time()``); ``None`` when the stream
        sends no reports, has sent nothing yet or is paused."""
        if self.cname is None or not self.packets or self.paused:
            return None
        ntp = int((wall + _NTP_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF
        report = RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=self.timestamp_at(moment),
                packet_count=self.packets & 0xFFFFFFFF,
                octet_count=self._octets & 0xFFFFFFFF,
            ),
        )
        cname = RtcpSdesPacket(
            chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(_SDES_CNAME, self.cname.encode())])]
        )
        return bytes(report) + bytes(cname)

    def send_due(self, now: float) -> None:
        """Send the frame of the latest slot due at ``now`` and schedule the next one."""
        slot = int((now - self._start) / self._interval)
        if slot > self._slot:
            if not self.paused:
                self.skipped += slot - self._slot
        else:
            slot = self._slot
        if self.paused:
            self._slot = slot + 1
            self.due = self._start + self._slot * self._interval
            return
        index = self._index % len(self._frames)
        self._index += 1
        timestamp = (self._timestamp_origin + slot * self._step) & 0xFFFFFFFF
        picture_id = 0
        if self._picture_id_offset is not None:
            picture_id = 0x8000 | self._picture_id
            self._picture_id = (self._picture_id + 1) & 0x7FFF
        native = self._native
        if native is not None and self._writer.native:  # type: ignore[union-attr]  # begin() set the writer
            packets, sent = self._send_whole(native[index], timestamp, picture_id)
        else:
            packets, sent = self._send_packets(self._frames[index], timestamp, picture_id)
        self.packets += packets
        self.bytes += sent
        if self.cname is not None:
            self._octets += sent - self._header_size * packets
        self._slot = slot + 1
        self.due = self._start + self._slot * self._interval

    def _send_whole(self, frame: FrameTemplate, timestamp: int, picture_id: int) -> tuple[int, int]:
        """The frame in one compiled call; a frame counts when all its packets left."""
        packets = send_frame(self._writer, frame, self._seq, timestamp, picture_id)  # type: ignore[arg-type]  # begin() set the writer
        if packets == frame.count:
            self.frames += 1
        self._seq = (self._seq + frame.count) & 0xFFFF
        return packets, frame.sent_bytes[0]

    def _send_packets(
        self, tails: list[bytes | bytearray], timestamp: int, picture_id: int
    ) -> tuple[int, int]:
        """The frame one packet at a time; a frame counts when its last packet left."""
        offset = self._picture_id_offset
        if offset is not None:
            for tail in tails:
                _pack_picture_id(tail, offset, picture_id)
        forward = self._writer.forward  # type: ignore[union-attr]  # begin() set the writer
        first = self._first_byte
        payload_type = self.payload_type
        ssrc = self.ssrc
        seq = self._seq
        packets = 0
        sent = 0
        last = len(tails) - 1
        for index, tail in enumerate(tails):
            if index == last:
                size = forward(first, payload_type | 0x80, seq, timestamp, ssrc, tail + stamp())
                if size:
                    self.frames += 1
            else:
                size = forward(first, payload_type, seq, timestamp, ssrc, tail)
            seq = (seq + 1) & 0xFFFF
            if size:
                packets += 1
                sent += size
        self._seq = seq
        return packets, sent


class DirectPublisher:
    """Publishes :class:`PacketizedClip` streams on ``pc`` through the direct send path.

    :meth:`add` each clip before the offer is made (or :meth:`add_transceiver` and
    :meth:`add_streams`, for several streams on one transceiver); :meth:`start` once the
    answer is set.  From the moment the connection's DTLS transport is connected until it
    closes or :meth:`close`, the event loop's :class:`SharedPacer` sends each stream's
    frames when due (see :class:`PublishedStream`), and streams with a CNAME send their
    sender reports.
    """

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pc = pc
        #: what makes the streams once negotiated, in the order they were added
        self._added: list[Callable[[], Sequence[PublishedStream]]] = []
        self._tracks: list[rtc.IdleTrack] = []
        self._task: asyncio.Task[None] | None = None
        self.streams: list[PublishedStream] = []
        #: ``time.monotonic()`` when the first frames were due, once connected.
        self.started_at: float | None = None

    @property
    def pc(self) -> RTCPeerConnection:
        return self._pc

    def add(self, clip: PacketizedClip) -> RTCRtpTransceiver:
        """A send-only transceiver for ``clip`` whose aiortc sender sends nothing."""
        transceiver = self.add_transceiver(clip.kind, clip.mime_type)
        self.add_streams(lambda: [PublishedStream(transceiver, clip)])
        return transceiver

    def add_transceiver(
        self,
        kind: str,
        mime_type: str,
        on_rtcp: Callable[[AnyRtcpPacket], None] = _ignore_rtcp,
    ) -> RTCRtpTransceiver:
        """A send-only transceiver offering ``mime_type`` (and RTX) whose aiortc sender
        sends nothing; the feedback routed to its sender goes to ``on_rtcp``."""
        track = rtc.IdleTrack(kind)
        self._tracks.append(track)
        transceiver = self._pc.addTransceiver(track, direction="sendonly")
        codecs = [
            c
            for c in RTCRtpSender.getCapabilities(kind).codecs
            if c.mimeType.lower() in (mime_type.lower(), f"{kind}/rtx")
        ]
        transceiver.setCodecPreferences(codecs)
        rtc.intercept_sender_rtcp(transceiver.sender, on_rtcp)
        return transceiver

    def add_streams(self, build: Callable[[], Sequence[PublishedStream]]) -> None:
        """Streams to send, made by ``build()`` when :meth:`start` is called (what they
        send with is known once the answer is set)."""
        self._added.append(build)

    def start(self) -> None:
        """Start sending once connected; call after the answer is set (raises
        ``ValueError`` when a negotiated codec does not match its clip)."""
        if self._task is not None:
            return
        self.streams = [stream for build in self._added for stream in build()]
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop sending (the task is cancelled and awaited)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for track in self._tracks:
            track.stop()

    async def _run(self) -> None:
        try:
            await self._publish()
        except Exception:
            logger.exception("direct publishing stopped")

    async def _publish(self) -> None:
        if not self.streams:
            return
        transports = {stream.dtls for stream in self.streams}
        for dtls in transports:
            if not await _connected(dtls):
                return
        writers = {dtls: RtpWriter(dtls) for dtls in transports}
        pacer = SharedPacer.of_running_loop()
        self.started_at = pacer.add(self.streams, writers)
        closed = asyncio.Event()

        def on_state_change() -> None:
            if any(dtls.state != "connected" for dtls in transports):
                closed.set()

        for dtls in transports:
            dtls.on("statechange", on_state_change)
        try:
            on_state_change()
            reporting = [stream for stream in self.streams if stream.cname is not None]
            while reporting and not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SENDER_REPORT_INTERVAL):
                        await closed.wait()
                moment, wall = time.monotonic(), time.time()
                for stream in reporting:
                    report = stream.sender_report(moment, wall)
                    if report is not None and not closed.is_set():
                        writers[stream.dtls].write_rtcp(report)
            await closed.wait()
        finally:
            pacer.remove(self.streams)
            for dtls in transports:
                dtls.remove_listener("statechange", on_state_change)


class SharedPacer:
    """Wakes once per :data:`TICK` for every publisher of the event loop, not once per
    frame per publisher.

    On this kind of machine an event-loop wake-up costs tens of µs of CPU whatever it
    then does, more than sending a frame; a load client with one timer per stream (80
    wake-ups a second per publisher, audio and video) spends most of its core waking up.
    Here every stream's interval is a whole number of ticks (20 ms = 6 ticks, 1/30 s =
    10), and each publisher starts on its own tick of a :data:`PHASES`-tick cycle, given
    in turn: the publishers' frames stay spread evenly over time (as independent
    senders' are), a tick sends the frames of the few publishers whose slot it is, and
    the client wakes 300 times a second at most (once per tick), however many
    publishers it runs.  Streams that fall behind skip slots (:class:`PublishedStream`).
    """

    _instances: dict[asyncio.AbstractEventLoop, SharedPacer] = {}

    def __init__(self) -> None:
        self._origin = time.monotonic()
        #: tick number -> streams due at that tick
        self._due: dict[int, list[PublishedStream]] = {}
        self._active: set[PublishedStream] = set()
        self._phase = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: the compiled path's scratch buffers for one frame (one loop, one frame at a time)
        self._batch = new_frame_batch()

    @classmethod
    def of_running_loop(cls) -> SharedPacer:
        loop = asyncio.get_running_loop()
        for other in [k for k in cls._instances if k.is_closed()]:
            del cls._instances[other]
        pacer = cls._instances.get(loop)
        if pacer is None:
            pacer = cls._instances[loop] = cls()
        return pacer

    def _tick_of(self, moment: float) -> int:
        return max(0, round((moment - self._origin) / TICK))

    def add(
        self,
        streams: list[PublishedStream],
        writers: dict[RTCDtlsTransport, RtpWriter],
    ) -> float:
        """Pace ``streams`` (one publisher's) from its phase in the next cycle on;
        returns the ``time.monotonic()`` its first frames are due."""
        now = time.monotonic()
        tick = self._tick_of(now) + 1
        tick += (self._phase - tick) % PHASES
        self._phase = (self._phase + 1) % PHASES
        start = self._origin + tick * TICK
        for stream in streams:
            stream.begin(writers[stream.dtls], start, self._batch)
            self._active.add(stream)
            self._due.setdefault(tick, []).append(stream)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()
        return start

    def remove(self, streams: list[PublishedStream]) -> None:
        self._active.difference_update(streams)

    async def _run(self) -> None:
        clock = time.monotonic
        due = self._due
        active = self._active
        try:
            while active:
                if not due:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                tick = min(due)
                wait = self._origin + tick * TICK - clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                now = clock()
                # the last tick begun (not the nearest: a stream is never sent early)
                current = int((now - self._origin) / TICK + 1e-9)
                for number in [t for t in due if t <= current]:
                    for stream in due.pop(number):
                        if stream not in active:
                            continue
                        try:
                            stream.send_due(now)
                        except Exception:
                            logger.exception("direct publishing failed")
                            active.discard(stream)
                            continue
                        due.setdefault(max(self._tick_of(stream.due), current + 1), []).append(
                            stream
                        )
        finally:
            self._due.clear()
            self._task = None


#: The shared pacer's period: 20 ms (an Opus frame) and 1/30 s (a video frame) are 6
#: and 10 ticks; a publisher's phase is one of the 30 ticks of their common cycle.
TICK = 1 / 300
PHASES = 30


async def _connected(dtls: RTCDtlsTransport) -> bool:
    """Wait until ``dtls`` is connected (``True``) or has closed or failed (``False``)."""
    changed = asyncio.Event()

    def on_state_change() -> None:
        changed.set()

    dtls.on("statechange", on_state_change)
    try:
        while dtls.state != "connected":
            if dtls.state in ("closed", "failed"):
                return False
            changed.clear()
            await changed.wait()
        return True
    finally:
        dtls.remove_listener("statechange", on_state_change)


__all__ = [
    "SENDER_REPORT_INTERVAL",
    "DirectPublisher",
    "PacketizedClip",
    "PublishedStream",
    "SharedPacer",
    "packetize_opus",
    "packetize_vp8",
    "vp8_payloads",
]
