"""The Worker owns one process's media: its routers (live rooms) and transports.

API (all in-process, no signaling imports)::

    worker = Worker(MediaSettings(...))
    router = worker.router("room-1")
    publish = await worker.create_transport("alice", "publish")
    answer_sdp = await publish.accept_offer(offer_sdp)
    subscribe = await worker.create_transport("alice", "subscribe")
    subscribe.negotiator = send_offer_and_wait_for_answer   # async (offer) -> answer
    router.join("alice")
    worker.stats(); await worker.close()
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Protocol

from .consumer import Consumer
from .errors import NotFound
from .layer_selection import LayerSelection
from .producer import Producer
from .router import Router
from .rtc import FASTRECEIVE, ReceivePoller
from .rtc.native import log_native_paths
from .settings import MediaSettings
from .simulcast import SimulcastProducer, Track
from .speaker import ActiveSpeaker
from .transport import PUBLISH, SUBSCRIBE, Transport

logger = logging.getLogger(__name__)


class Every:
    """Runs ``job`` every ``interval`` seconds of the event loop's clock, at the deadlines
    k x ``interval``: a timer handle, not a task sleeping in a loop, so that each run is
    one iteration of the event loop (a sleeping task costs two: the timer, then the
    task's step), and jobs whose intervals divide one another (the worker's RTCP round
    and the receive poller's sweep each second, its layer round each half second) run in
    the same wake-up.  A job that raises is logged; the next run still comes."""

    __slots__ = ("_handle", "_interval", "_job", "_loop", "_next", "_what")

    def __init__(self, interval: float, job: Callable[[], object], what: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._job = job
        self._what = what
        self._next = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._schedule()

    def _schedule(self) -> None:
        now = self._loop.time()
        self._next += self._interval
        if self._next <= now:  # the first run, or the loop fell behind: the next deadline
            self._next = (now // self._interval + 1) * self._interval
        self._handle = self._loop.call_at(self._next, self._run)

    def _run(self) -> None:
        try:
            self._job()
        except Exception:
            logger.exception("%s failed", self._what)
        if self._handle is not None:
            self._schedule()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class WorkerObserver(Protocol):
    """Told of membership and producer changes (e.g. a hearing recorder). Both calls run
    synchronously on the media path: they must be cheap and must not raise."""

    def membership_changed(self, participant_id: str, router: Router | None) -> None: ...

    def producer_added(self, producer: Track) -> None: ...


class Worker:
    """Owns routers and transports and sends the SFU's periodic RTCP reports; hears
    from them through :class:`~sfu.listeners.RouterListener` and
    :class:`~sfu.listeners.TransportListener` (it implements both)."""

    def __init__(self, settings: MediaSettings | None = None) -> None:
        self.settings = settings or MediaSettings()
        log_native_paths()  # once per process: which compiled paths are in use, and why not
        self._routers: dict[str, Router] = {}
        self._transports: dict[str, Transport] = {}
        #: What the SFU refused from the peers of transports closed since, by reason.
        self._refused_closed: dict[str, int] = {}
        self._closed_since_reclaim = 0
        self._last_reclaim = time.monotonic()
        self._membership: dict[str, Router] = {}
        #: Idle producers (never fed) holding parked consumers, one per codec.
        self._parking: dict[tuple[object, ...], Producer] = {}
        #: The first rewritten sequence number of each consumer's current assignment.
        self._first_seq: weakref.WeakKeyDictionary[Consumer, int] = weakref.WeakKeyDictionary()
        self._closed = False
        #: The worker's periodic jobs (RTCP, active speakers, simulcast layers), once a
        #: transport exists.
        self._timers: list[Every] = []
        #: See :class:`WorkerObserver`.
        self.observers: list[WorkerObserver] = []
        #: Called with (room id, participant id) when a room's active speaker changes
        #: (``sfu.speaker``: audio levels read without decoding), or ``None``.
        self.on_active_speaker: Callable[[str, str], None] | None = None
        self._speakers: dict[str, ActiveSpeaker] = {}
        #: Simulcast layers per subscriber (``sfu.layer_selection``), every
        #: ``layer_interval`` seconds.
        self.layers = LayerSelection(self.settings)
        #: Reads every publish connection's media sockets (one epoll set; see
        #: ``MediaSettings.receive_poller``), or ``None``.
        self.receive_poller: ReceivePoller | None = (
            ReceivePoller(interval=None, busy_tick=self.settings.receive_busy_tick)
            if self.settings.receive_poller and FASTRECEIVE
            else None
        )

    # --- routers ------------------------------------------------------------------------

    def router(self, room_id: str) -> Router:
        """The router of ``room_id``, created on first use."""
        router = self._routers.get(room_id)
        if router is None:
            router = self._routers[room_id] = Router(self, room_id)
        return router

    def close_router(self, room_id: str) -> None:
        router = self._routers.pop(room_id, None)
        self._speakers.pop(room_id, None)
        if router is not None:
            for member in list(router.members):
                router.leave(member)

    def router_of(self, participant_id: str) -> Router | None:
        return self._membership.get(participant_id)

    # --- what routers and transports tell it (sfu.listeners) ---------------------------

    def on_router_member_changed(self, participant_id: str, router: Router | None) -> None:
        if router is None:
            self._membership.pop(participant_id, None)
        else:
            self._membership[participant_id] = router
        for observer in self.observers:
            observer.membership_changed(participant_id, router)

    # --- transports ---------------------------------------------------------------------

    async def create_transport(self, participant_id: str, direction: str) -> Transport:
        """A new ``"publish"`` or ``"subscribe"`` transport for ``participant_id``."""
        transport = Transport(self, participant_id, direction)
        self._transports[transport.id] = transport
        if not self._timers and not self._closed:
            settings = self.settings
            self._timers = [
                Every(settings.rtcp_interval, self._rtcp_round, "RTCP reports"),
                Every(settings.speaker_interval, self.decide_speakers, "active speakers"),
            ]
            if settings.layer_interval > 0:
                self._timers.append(
                    Every(settings.layer_interval, self.select_layers, "simulcast layers")
                )
        if direction == SUBSCRIBE:
            router = self.router_of(participant_id)
            if router is not None:
                router.subscriber_ready(participant_id)
        return transport

    def transport(self, transport_id: str) -> Transport:
        try:
            return self._transports[transport_id]
        except KeyError:
            raise NotFound(f"no transport {transport_id}") from None

    @property
    def transports(self) -> list[Transport]:
        return list(self._transports.values())

    def transports_of(
        self, participant_id: str, direction: str | None = None
    ) -> Iterator[Transport]:
        for transport in list(self._transports.values()):
            if transport.participant_id == participant_id and (
                direction is None or transport.direction == direction
            ):
                yield transport

    def transport_of_consumer(self, consumer: Consumer) -> Transport | None:
        for transport in self._transports.values():
            if transport.consumers.get(consumer.id) is consumer:
                return transport
        return None

    def on_transport_new_producer(self, transport: Transport, producer: Track) -> None:
        router = self.router_of(producer.participant_id)
        if router is not None:
            router.producer_added(producer)
        for observer in self.observers:
            observer.producer_added(producer)

    def video_codecs_for(self, participant_id: str) -> tuple[str, ...]:
        """A participant in a live room publishes one of the room's video codecs
        (``room_video_codecs``: what every participant decodes); one in no room (a video
        message, received by the recorder) any accepted video codec."""
        if self.router_of(participant_id) is not None:
            return self.settings.room_video_codecs
        return tuple(c for c in self.settings.codecs if c.lower().startswith("video/"))

    def on_transport_producer_closed(self, transport: Transport, producer: Track) -> None:
        router = self.router_of(producer.participant_id)
        if router is not None:
            router.producer_closed(producer)

    def on_transport_closed(self, transport: Transport) -> None:
        if self._transports.pop(transport.id, None) is not None:
            self._closed_since_reclaim += 1
            for reason, count in transport.refusals().items():
                self._refused_closed[reason] = self._refused_closed.get(reason, 0) + count

    # --- parked consumers (m-lines kept for reuse) --------------------------------------

    def park(self, consumer: Consumer) -> None:
        """Stop ``consumer`` at once and keep its m-line for a later producer of the same
        codec (see :meth:`parked_consumer`)."""
        producer = consumer.producer
        if producer is None or consumer.closed or producer.participant_id == "":
            return
        key = _codec_key(producer)
        parking = self._parking.get(key)
        if parking is None:
            parking = self._parking[key] = Producer(
                participant_id="",
                kind=producer.kind,
                codec=producer.codec,
                rtx_payload_type=None,
                rtcp_ssrc=0,
                writer=None,  # type: ignore[arg-type]  # never fed, never reports
                settings=self.settings,
            )
        self.switch(consumer, parking)

    def switch(self, consumer: Consumer, producer: Track) -> None:
        """``consumer.switch_to(producer)``, remembering the sequence number from which the
        subscriber's m-line carries ``producer`` (see :meth:`first_sequence_number`)."""
        if consumer.producer is not producer:
            self._first_seq[consumer] = consumer.next_sequence_number
        consumer.switch_to(producer)

    def consumer_created(self, consumer: Consumer) -> None:
        """Remember where a new consumer's first assignment begins."""
        self._first_seq.setdefault(consumer, consumer.next_sequence_number)

    def first_sequence_number(self, consumer: Consumer) -> int | None:
        """The first rewritten RTP sequence number that ``consumer`` writes for its current
        producer (or parking): every packet before it on the m-line came from an earlier
        assignment, none from or after it did.  ``None`` for a consumer the router did
        not create."""
        return self._first_seq.get(consumer)

    def parked_consumer(self, transport: Transport, producer: Track) -> Consumer | None:
        """A parked consumer of ``transport`` that can carry ``producer``, if any."""
        parking = self._parking.get(_codec_key(producer))
        if parking is None:
            return None
        for consumer in parking.consumers:
            if not consumer.closed and transport.consumers.get(consumer.id) is consumer:
                return consumer
        return None

    def is_parked(self, consumer: Consumer) -> bool:
        producer = consumer.producer
        return producer is None or producer.participant_id == ""

    def subscriptions(self) -> list[dict[str, object]]:
        """Who receives whom right now: one row per forwarding consumer, with the rooms
        of both ends (parked m-lines are left out)."""
        rows: list[dict[str, object]] = []
        for transport in self._transports.values():
            if transport.direction != SUBSCRIBE or transport.closed:
                continue
            subscriber_room = self.router_of(transport.participant_id)
            for consumer in transport.consumers.values():
                if consumer.closed or self.is_parked(consumer):
                    continue
                producer = consumer.producer
                assert producer is not None
                publisher_room = self.router_of(producer.participant_id)
                rows.append(
                    {
                        "subscriber": transport.participant_id,
                        "subscriber_room": subscriber_room.room_id if subscriber_room else None,
                        "publisher": producer.participant_id,
                        "publisher_room": publisher_room.room_id if publisher_room else None,
                        "kind": consumer.kind,
                        "mid": consumer.mid,
                    }
                )
        return rows

    def set_tile_heights(self, participant_id: str, heights: dict[str, int | None]) -> int:
        """What ``participant_id``'s page shows each received video in: the tile's height
        in pixels by producer id (``None``: not shown / unknown).  A small tile caps the
        simulcast layer it is sent (see docs/media-quality.md).  Unknown producer ids are
        ignored; returns how many consumers it applied to."""
        applied = 0
        for transport in self.transports_of(participant_id, SUBSCRIBE):
            for consumer in transport.consumers.values():
                producer_id = consumer.producer_id
                if producer_id is not None and producer_id in heights:
                    consumer.tile_height = heights[producer_id]
                    applied += 1
        return applied

    # --- RTCP ---------------------------------------------------------------------------

    def decide_speakers(self) -> None:
        """One interval of every room's active speaker (see :mod:`sfu.speaker`): the audio
        levels its members' producers summed since the last call."""
        for room_id, router in list(self._routers.items()):
            levels: dict[str, tuple[int, float, int]] = {}
            for producer in router.producers:
                if (
                    isinstance(producer, Producer)
                    and producer.kind == "audio"
                    and not producer.closed
                ):
                    levels[producer.participant_id] = producer.take_audio_level()
            speaker = self._speakers.get(room_id)
            if speaker is None:
                speaker = self._speakers[room_id] = ActiveSpeaker()
            changed = speaker.update(levels)
            if changed is not None and self.on_active_speaker is not None:
                self.on_active_speaker(room_id, changed)

    def select_layers(self, now: float | None = None) -> None:
        """One round of every subscriber's simulcast layers (see
        :mod:`sfu.layer_selection`), and of the layer each recorded simulcast camera is
        recorded from (:meth:`SimulcastProducer.follow_sinks`)."""
        for transport in list(self._transports.values()):
            if transport.direction == "publish" and not transport.closed:
                for producer in list(transport.producers.values()):
                    if isinstance(producer, SimulcastProducer):
                        producer.follow_sinks()
        self.layers.run(
            list(self._transports.values()),
            time.monotonic() if now is None else now,
            self._is_speaker,
        )

    def _is_speaker(self, participant_id: str) -> bool:
        router = self.router_of(participant_id)
        return router is not None and self.active_speaker(router.room_id) == participant_id

    def active_speaker(self, room_id: str) -> str | None:
        """The room's active speaker, or ``None`` before anyone spoke."""
        speaker = self._speakers.get(room_id)
        return speaker.current if speaker is not None else None

    def _rtcp_round(self) -> None:
        self._send_reports(time.time())
        self._reclaim_closed()

    def _reclaim_closed(self) -> None:
        """A closed peer connection is a web of reference cycles (aiortc's transports,
        tasks and event handlers), freed only by a full collection, which the server's
        collector thresholds (signaling/heap.py) make rare: under steady joins and leaves
        a worker grew ~8 MB a minute waiting for it.  So a full collection runs at most
        every ``reclaim_interval`` seconds while transports have closed since the last."""
        if not self._closed_since_reclaim:
            return
        now = time.monotonic()
        if now - self._last_reclaim < self.settings.reclaim_interval:
            return
        closed, self._closed_since_reclaim = self._closed_since_reclaim, 0
        found = gc.collect()
        self._last_reclaim = time.monotonic()
        logger.debug(
            "closed connections reclaimed",
            extra={
                "transports": closed,
                "objects": found,
                "ms": round((self._last_reclaim - now) * 1000, 1),
            },
        )

    def _send_reports(self, now: float) -> None:
        for transport in list(self._transports.values()):
            try:
                transport.send_receiver_reports()
                transport.send_sender_reports(now)
            except Exception:
                logger.exception("RTCP reports for transport %s failed", transport.id)

    # --- introspection and shutdown -----------------------------------------------------

    def stats(self) -> dict[str, object]:
        """Counters per transport (with its producers and consumers) and per router."""
        return {
            "routers": [r.stats() for r in self._routers.values()],
            "transports": [t.stats() for t in self._transports.values()],
            "subscriptions": self.subscriptions(),
            "refused_closed": dict(self._refused_closed),
        }

    async def close(self) -> None:
        """Close every transport and stop the RTCP task."""
        self._closed = True
        for transport in list(self._transports.values()):
            await transport.close()
        self._routers.clear()
        self._membership.clear()
        self._parking.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        if self.receive_poller is not None:
            self.receive_poller.close()


def _codec_key(producer: Track) -> tuple[object, ...]:
    """Producers with equal keys can share an m-line negotiated for either of them."""
    codec = producer.codec
    parameters = codec.parameters or {}
    return (
        producer.kind,
        codec.mimeType.lower(),
        codec.clockRate,
        codec.channels,
        str(parameters.get("profile-level-id", "")),
        str(parameters.get("packetization-mode", "")),
    )


__all__ = ["PUBLISH", "SUBSCRIBE", "Worker", "WorkerObserver"]
