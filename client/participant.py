"""A headless participant: publishes media through one peer connection and receives the
room through another, counting what arrives per track.

    participant = Participant("alice", LocalSignal(worker, "room"), video="pattern")
    await participant.join()
    async with asyncio.timeout(10):
        await participant.wait_until(lambda p: p.frames_from_all(2))
    await participant.close()

With ``video="simulcast"`` it publishes three VP8 layers on one m-line as Chromium does
(:class:`client.simulcast.SimulcastVideo`, reachable as :attr:`Participant.simulcast` to
pause a layer; a rejoin publishes it afresh, every layer sending); with
``check_video=True`` every received VP8 track is checked frame by frame
(:class:`client.vp8_check.Vp8Check`, as ``participant.tracks[mid].check``).

With ``rejoin=True`` the participant comes back by itself when its signal reports that
the live session ended for any reason but ``"removed"`` (a failed connection, a restarted
or changed media worker, a dropped socket): it closes both peer connections and joins
again with fresh ones, retrying with backoff until it is in again or closed, as the
browser's live page does.  What the earlier connections received stays in
:attr:`Participant.past_tracks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from sfu import rtc

from .direct_publish import DirectPublisher
from .media import PatternVideoTrack, PreEncodedVideoTrack, ToneAudioTrack
from .receiver_feedback import ReceiverFeedback, RtpDataHandler
from .reorder import PacketReorder
from .signal import REMOVED, OfferHandler, Signal
from .simulcast import SimulcastVideo, negotiate
from .simulcast_clips import LayerClip, simulcast_clips
from .transport_cc import keep_transport_cc, transport_cc_ids
from .vp8_check import Vp8Check

log = logging.getLogger(__name__)

#: Seconds between rejoin attempts: the first delays, then the last one repeated.
REJOIN_DELAYS = (0.2, 0.5, 1.0, 2.0)


def receiving_transceiver(
    pc: RTCPeerConnection | None, track: MediaStreamTrack
) -> tuple[RTCRtpTransceiver, str]:
    """The transceiver of ``pc`` that receives ``track``, and its mid (set once negotiated)."""
    if pc is None:
        raise RuntimeError("a track arrived without a subscribe connection")
    transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
    if transceiver.mid is None:
        raise RuntimeError("a track arrived on a transceiver without a mid")
    return transceiver, transceiver.mid


def _packet_counter(
    received: ReceivedTrack,
    payload_type: int | None,
    feed: Callable[[bytes, int], None] | None,
) -> Callable[[bytes, int], None]:
    """What every intercepted packet of ``received`` does first: counted (packets, bytes,
    frames by the marker bit of ``payload_type``'s packets, arrival times when kept) and
    handed to the receiver feedback ``feed``, if any."""
    arrivals = received.arrivals
    # the second byte of a packet of the media payload type with the marker bit
    marked = 0x80 | payload_type if payload_type is not None else -1

    def counted(data: bytes, arrival_time_ms: int) -> None:
        received.packets += 1
        received.bytes += len(data)
        if len(data) > 1 and data[1] == marked:
            received.marked += 1
        if arrivals is not None:
            arrivals.append(time.monotonic())
        if feed is not None:
            feed(data, arrival_time_ms)

    return counted


def _rtx_payload_type(transceiver: RTCRtpTransceiver, payload_type: int) -> int | None:
    """The negotiated RTX payload type that repairs ``payload_type`` (``apt``), if any."""
    for codec in rtc.negotiated_codecs(transceiver):
        if codec.name.lower() == "rtx" and str(codec.parameters.get("apt")) == str(payload_type):
            return codec.payloadType
    return None


def _configuration() -> RTCConfiguration:
    # MAX_BUNDLE: with aiortc's default (balanced) policy a second m-line of one kind in
    # an offer keeps a transport that BUNDLE then discards.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


@dataclass
class ReceivedTrack:
    """What arrived on one received track (one m-line of the subscribe connection)."""

    mid: str
    kind: str
    packets: int = 0
    #: RTP bytes of the packets counted (decrypted: header, extensions, payload).
    bytes: int = 0
    #: Packets of the media payload type with the marker bit (a video frame's last
    #: packet): the frames that arrived, counted without decoding.
    marked: int = 0
    frames: int = 0
    #: ``time.monotonic()`` of the first decoded frame (or first packet when not decoding).
    first_frame_at: float | None = None
    frame_times: list[float] = field(default_factory=list)
    #: The frame-by-frame check of a VP8 track (``check_video=True``); ``frames`` then
    #: counts the frames it decoded cleanly.  Closed with the connection (its decoder
    #: released, its figures kept).
    check: Vp8Check | None = None
    #: What puts the checked track's retransmissions back in place (``feedback=True``).
    reorder: PacketReorder | None = None
    #: ``time.monotonic()`` of every packet's arrival (``Participant(arrival_times=True)``).
    arrivals: list[float] | None = None

    def frames_since(self, since: float) -> int:
        return sum(1 for t in self.frame_times if t >= since)

    def longest_gap(self, since: float, until: float) -> float | None:
        """The longest time between two packets' arrivals in [``since``, ``until``], the
        window's edges counting as arrivals (``None`` without recorded arrivals)."""
        if self.arrivals is None or until < since:
            return None
        times = [since, *(t for t in self.arrivals if since <= t <= until), until]
        return max(later - earlier for earlier, later in itertools.pairwise(times))


@dataclass(frozen=True)
class Ending:
    """One end of the participant's live session, as its signal reported it."""

    at: float  # ``time.monotonic()``
    reason: str


class Participant:
    """Publishes ``audio``/``video`` and receives everybody else in its room.

    ``video`` is ``"pattern"`` (generated, encoded live), ``"preencoded"`` (a VP8 clip
    looped; pass ``clip``), ``"simulcast"`` (three VP8 layers of pre-encoded clips on
    one m-line, :class:`~client.simulcast.SimulcastVideo`; ``simulcast_layers`` replaces
    the default clips of :func:`~client.simulcast_clips.simulcast_clips`) or ``None``.
    ``video_codec`` picks the published codec (``"video/VP8"`` or ``"video/H264"``;
    simulcast is VP8).  With ``decode=False`` received packets are counted but never
    decoded (benchmarks).  With ``check_video=True`` received VP8 tracks are checked and
    decoded by a :class:`~client.vp8_check.Vp8Check` each (``tracks[mid].check``)
    instead of aiortc's decoder.  ``loss`` drops that fraction of received media
    datagrams, like a lossy link toward this participant.  With ``feedback=True`` (not
    with ``decode=True``: a decoding receiver sends aiortc's own) the subscribe
    connection sends a browser's receiver feedback (receiver reports, REMB, NACK, PLI;
    :class:`~client.receiver_feedback.ReceiverFeedback`, in :attr:`feedback`), and its
    answers accept the transport-wide sequence number an offer proposes (aiortc would
    leave it out: :func:`~client.transport_cc.keep_transport_cc`), so that the SFU
    stamps it and gets transport feedback instead of REMB; without ``feedback`` the
    answers do not accept it, and the SFU falls back to REMB; a checked
    track then sees its retransmissions put back in place, as a browser's decoder does
    (:class:`~client.reorder.PacketReorder`, ``tracks[mid].reorder``).  Tracks not
    decoded count their packets' bytes and marker bits (``bytes``, ``marked``); with
    ``arrival_times=True`` they also record each packet's arrival (``arrivals``).

    With ``rejoin=True`` an ending reported by the signal (other than ``"removed"``)
    makes it join again by itself; each attempt may take ``rejoin_timeout`` seconds.
    Owns its two peer connections, the tracks it publishes, the tasks decoding what it
    receives and the rejoin task.
    """

    def __init__(
        self,
        participant_id: str,
        signal: Signal,
        *,
        audio: bool | str = True,
        video: str | None = "pattern",
        video_codec: str = "video/VP8",
        clip: list[bytes] | None = None,
        simulcast_layers: Sequence[LayerClip] | None = None,
        decode: bool = True,
        check_video: bool = False,
        loss: float = 0.0,
        rejoin: bool = False,
        rejoin_timeout: float = 30.0,
        feedback: bool = False,
        arrival_times: bool = False,
    ) -> None:
        if feedback and decode:
            raise ValueError("feedback=True is for decode=False: aiortc's decoder sends its own")
        self.id = participant_id
        self.signal = signal
        #: The current subscribe connection's tracks, by mid.
        self.tracks: dict[str, ReceivedTrack] = {}
        #: Tracks of earlier subscribe connections (before each rejoin), oldest first.
        self.past_tracks: list[ReceivedTrack] = []
        #: ``time.monotonic()`` of the first join.
        self.joined_at: float | None = None
        #: Completed rejoins, and when the latest one completed.
        self.rejoins = 0
        self.rejoined_at: float | None = None
        #: Rejoin attempts that failed (and were retried).
        self.rejoin_failures = 0
        #: Every ending the signal reported, in order.
        self.endings: list[Ending] = []
        #: A mediator removed this participant: it does not rejoin by itself.
        self.removed = False
        self._audio = audio
        self._video = video
        self._video_codec = video_codec
        self._clip = clip
        self._simulcast_layers = simulcast_layers
        self._decode = decode
        self._check_video = check_video
        #: The simulcast video published (``video="simulcast"``), once publishing.
        self.simulcast: SimulcastVideo | None = None
        self._direct: DirectPublisher | None = None
        self._loss = loss
        self._send_feedback = feedback
        self._arrival_times = arrival_times
        #: The current subscribe connection's receiver feedback (``feedback=True``).
        self.feedback: ReceiverFeedback | None = None
        self._random = random.Random(participant_id)
        self._publish_pc: RTCPeerConnection | None = None
        self._subscribe_pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sources: list[MediaStreamTrack] = []
        self._changed = asyncio.Event()
        self._rejoin = rejoin
        self._rejoin_timeout = rejoin_timeout
        self._rejoin_task: asyncio.Task[None] | None = None
        self._ended_again = False  # an ending arrived while rejoining
        self._wanted = False  # joined, and not closed: come back after an ending
        self._generation = 0  # which connections the offer handler serves
        self._entering = asyncio.Lock()  # one join (or rejoin attempt) at a time
        if rejoin:
            signal.on_ended = self._on_ended

    async def join(self) -> None:
        """Connect, start receiving the room, and publish."""
        await self.connect()
        if self._audio or self._video:
            await self.publish()

    async def connect(self) -> None:
        """Connect and start receiving the room, without publishing yet."""
        async with self._entering:
            self.removed = False
            if self.joined_at is None:
                self.joined_at = time.monotonic()
            await self.signal.connect(self.id, self._offer_handler())
            self._wanted = True

    async def publish(self) -> None:
        """Open the publish connection with fresh tracks (a rejoin does it again)."""
        pc = self._publish_pc = RTCPeerConnection(_configuration())
        if self._audio:
            track = ToneAudioTrack() if self._audio == "tone" else AudioStreamTrack()
            self._sources.append(track)
            pc.addTransceiver(track, direction="sendonly")
        simulcast = None
        if self._video == "simulcast":
            layers = self._simulcast_layers
            if layers is None:  # encoded once per process (about a second of CPU)
                layers = await asyncio.to_thread(simulcast_clips)
            direct = self._direct = DirectPublisher(pc)
            simulcast = self.simulcast = SimulcastVideo(direct, layers)
        elif self._video:
            if self._video == "preencoded":
                video: MediaStreamTrack = PreEncodedVideoTrack(self._clip or [])
            else:
                video = PatternVideoTrack()
            self._sources.append(video)
            transceiver = pc.addTransceiver(video, direction="sendonly")
            codecs = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in (self._video_codec.lower(), "video/rtx")
            ]
            transceiver.setCodecPreferences(codecs)
        await negotiate(pc, self.signal.publish, simulcast)
        if simulcast is not None:
            simulcast_publisher = self._direct
            assert simulcast_publisher is not None  # made with the simulcast video
            simulcast_publisher.start()

    def _offer_handler(self) -> OfferHandler:
        generation = self._generation

        async def answer(offer: str) -> str:
            if generation != self._generation:
                raise RuntimeError("an offer for connections already closed")
            return await self._on_subscribe_offer(offer)

        return answer

    async def _on_subscribe_offer(self, offer: str) -> str:
        pc = self._subscribe_pc
        if pc is None:
            pc = self._subscribe_pc = RTCPeerConnection(_configuration())

            def on_track(track: MediaStreamTrack, pc: RTCPeerConnection = pc) -> None:
                if pc is self._subscribe_pc:  # not a connection a rejoin closed meanwhile
                    self._on_track(track)

            pc.on("track", on_track)
            if not self._decode:  # every receiver is hooked: no decoder task to feed
                rtc.receive_directly(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if self.feedback is not None:
            self.feedback.declare(offer)
        if self._loss:
            transceivers = pc.getTransceivers()
            if transceivers:  # a later offer on the same connection changes nothing
                rtc.drop_incoming_rtp(
                    transceivers[0].receiver.transport,
                    lambda: self._random.random() < self._loss,
                )
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
        if self._send_feedback:
            ids = transport_cc_ids(offer)
            answer = keep_transport_cc(answer, ids)
            if self.feedback is not None:
                self.feedback.use_transport_cc(ids)
        return answer

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver, mid = receiving_transceiver(self._subscribe_pc, track)
        received = self.tracks[mid] = ReceivedTrack(mid, track.kind)
        if self._arrival_times:
            received.arrivals = []
        codecs = [c for c in rtc.negotiated_codecs(transceiver) if c.name.lower() != "rtx"]
        if self._check_video and codecs and codecs[0].mimeType.lower() == "video/vp8":
            self._check(transceiver, received, codecs[0].payloadType)
        elif self._decode:
            self._own(self._consume(track, received))
        else:
            feed = self._feedback_for(transceiver) if self._send_feedback else None
            counted = _packet_counter(received, codecs[0].payloadType if codecs else None, feed)

            def count(data: bytes, arrival_time_ms: int) -> None:
                counted(data, arrival_time_ms)
                if received.first_frame_at is None:
                    received.first_frame_at = time.monotonic()

            # no compiled track counter: every packet reaches ``count`` (and the feedback)
            rtc.intercept_rtp_data(transceiver.receiver, count)
        self._notify()

    def _check(
        self, transceiver: RTCRtpTransceiver, received: ReceivedTrack, payload_type: int | None
    ) -> None:
        """Feed the track's packets to a :class:`Vp8Check`, which decodes them."""
        check = received.check = Vp8Check(payload_type=payload_type)
        feed = self._feedback_for(transceiver) if self._send_feedback else None
        counted = _packet_counter(received, payload_type, feed)

        def checked(decoded_before: int) -> None:
            if check.frames_decoded != decoded_before:
                now = time.monotonic()
                received.frames += check.frames_decoded - decoded_before
                received.frame_times.append(now)
                if received.first_frame_at is None:
                    received.first_frame_at = now
                self._notify()

        check_data: Callable[[bytes], None] = check.feed
        if feed is not None and payload_type is not None:
            # this receiver NACKs: its check sees retransmissions put back in place, as a
            # browser's decoder does behind its jitter buffer
            def deliver(ssrc: int, seq: int, timestamp: int, marker: bool, payload: bytes) -> None:
                before = check.frames_decoded
                check.feed_packet(ssrc, seq, timestamp, marker, payload)
                checked(before)

            reorder = received.reorder = PacketReorder(
                deliver,
                media_payload_type=payload_type,
                rtx_payload_type=_rtx_payload_type(transceiver, payload_type),
            )
            check_data = reorder.feed

        def on_data(data: bytes, arrival_time_ms: int) -> None:
            counted(data, arrival_time_ms)
            before = check.frames_decoded
            check_data(data)
            checked(before)

        rtc.intercept_rtp_data(transceiver.receiver, on_data)

    def _feedback_for(self, transceiver: RTCRtpTransceiver) -> RtpDataHandler:
        dtls = transceiver.receiver.transport
        if self.feedback is None or self.feedback.dtls is not dtls:
            if self.feedback is not None:
                self.feedback.close()
            self.feedback = ReceiverFeedback(dtls)
        return self.feedback.watch(transceiver)

    async def _consume(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        try:
            while True:
                await track.recv()
                now = time.monotonic()
                received.frames += 1
                received.frame_times.append(now)
                if received.first_frame_at is None:
                    received.first_frame_at = now
                self._notify()
        except MediaStreamError:
            pass

    def _own(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self) -> None:
        self._changed.set()

    async def update_packet_counts(self) -> None:
        """Refresh ``packets`` of decoded tracks from the receivers' statistics."""
        if self._subscribe_pc is None or not self._decode:
            return
        for transceiver in self._subscribe_pc.getTransceivers():
            received = self.tracks.get(transceiver.mid) if transceiver.mid else None
            if received is None or received.check is not None:  # counted as they come
                continue
            stats = await transceiver.receiver.getStats()
            received.packets = sum(
                s.packetsReceived for s in stats.values() if s.type == "inbound-rtp"
            )

    def frames_from_all(
        self, count: int, kind: str | None = None, since: float | None = None
    ) -> bool:
        """True when at least ``count`` current tracks (of ``kind``) have decoded a frame
        (at or after ``since``, a ``time.monotonic()``, when given)."""
        decoded = [
            t
            for t in self.tracks.values()
            if (kind is None or t.kind == kind)
            and (t.frames if since is None else t.frames_since(since))
        ]
        return len(decoded) >= count

    @property
    def rejoining(self) -> bool:
        """An ending was reported and the participant is not in again yet."""
        return self._rejoin_task is not None and not self._rejoin_task.done()

    # --- rejoining ----------------------------------------------------------------------

    def _on_ended(self, reason: str) -> None:
        self.endings.append(Ending(time.monotonic(), reason))
        self._notify()
        if reason == REMOVED and self._wanted:
            self.removed = True
            self._wanted = False
            log.info("participant %s: removed from the live session", self.id)
            self._own(self._leave_removed())
            return
        if not self._wanted:
            log.info("participant %s: live session ended (%s)", self.id, reason)
            return
        if self.rejoining:
            self._ended_again = True
            return
        log.info("participant %s: live session ended (%s); rejoining", self.id, reason)
        self._rejoin_task = asyncio.ensure_future(self._rejoin_until_in(reason))

    async def _rejoin_until_in(self, reason: str) -> None:
        publishing = self._publish_pc is not None
        attempt = 0
        while self._wanted:
            self._ended_again = False
            try:
                async with self._entering:
                    await self._drop_connections()
                    async with asyncio.timeout(self._rejoin_timeout):
                        await self.signal.connect(self.id, self._offer_handler())
                        if publishing:
                            await self.publish()
            except Exception as error:  # refused, timed out, unreachable: try again
                delay = REJOIN_DELAYS[min(attempt, len(REJOIN_DELAYS) - 1)]
                attempt += 1
                self.rejoin_failures += 1
                log.warning(
                    "participant %s: rejoin attempt %d failed (%s: %s); next in %.1f s",
                    self.id,
                    attempt,
                    type(error).__name__,
                    error,
                    delay,
                )
                await asyncio.sleep(delay * self._random.uniform(0.8, 1.2))
                continue
            if not self._wanted:  # removed meanwhile
                return
            if self._ended_again:  # ended again while joining: once more
                continue
            self.rejoins += 1
            self.rejoined_at = time.monotonic()
            log.info(
                "participant %s: rejoined after %s (rejoin %d, %d failed attempts)",
                self.id,
                reason,
                self.rejoins,
                attempt,
            )
            self._notify()
            return

    async def _leave_removed(self) -> None:
        async with self._entering:
            if self.removed:
                await self._drop_connections()

    async def _drop_connections(self) -> None:
        """Close both peer connections and stop the published tracks, keeping what was
        received in :attr:`past_tracks`."""
        self._generation += 1
        pcs = (self._publish_pc, self._subscribe_pc)
        self._publish_pc = self._subscribe_pc = None
        direct, self._direct = self._direct, None
        if direct is not None:
            await direct.close()
        if self.feedback is not None:
            self.feedback.close()
            self.feedback = None
        self._close_tracks()
        self.past_tracks.extend(self.tracks.values())
        self.tracks = {}
        for pc in pcs:
            if pc is not None:
                await pc.close()
        sources, self._sources = self._sources, []
        for source in sources:
            source.stop()
        self._notify()

    def _close_tracks(self) -> None:
        """The current tracks end with their connection: stop their reorders' timers and
        release their checks' decoders (their figures stay readable)."""
        for track in self.tracks.values():
            if track.reorder is not None:
                track.reorder.close()
            if track.check is not None:
                track.check.close()

    async def wait_until(self, condition: Callable[[Participant], bool]) -> None:
        """Wait until ``condition(self)`` holds (wrap in ``asyncio.timeout``)."""
        while not condition(self):
            self._changed.clear()
            try:
                async with asyncio.timeout(0.2):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        self._wanted = False
        task, self._rejoin_task = self._rejoin_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.signal.close()
        if self._direct is not None:
            await self._direct.close()
        if self.feedback is not None:
            self.feedback.close()
        self._close_tracks()
        for pc in (self._publish_pc, self._subscribe_pc):
            if pc is not None:
                await pc.close()
        for source in self._sources:
            source.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
