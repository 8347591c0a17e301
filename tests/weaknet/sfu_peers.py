"""Headless participants in weak-network namespaces, negotiating with an SFU that runs in
the test's process.

The SFU (:class:`sfu.Worker`) stays in the test's process, in the root namespace; each
participant is a :class:`client.Participant` in a child process of its own namespace
(:meth:`tests.support.weaknet.Participant.start`), so that its media crosses its own veth
pair and whatever shaping is put on it.  Signalling uses the harness's JSON-lines channel
both ways, the shape of ``bench/_sfu_process.py``'s ``RemoteSignal`` turned around:

* the child's :class:`ChannelSignal` (a :class:`client.signal.Signal`) calls the parent's
  handlers ``connect(participant_id)``, ``publish(offer)`` and ``leave()``;
* the parent's :class:`SfuSide` answers them with the worker (a subscribe transport whose
  negotiator sends the SFU's offers to the child's ``subscribe_offer`` and returns its
  answer, a publish transport that answers the child's offer) and keeps every address the
  SFU wrote into its candidates, so that a test can check which of its links ICE could use.

::

    peer = await RemotePeer.start(worker, net_participant, "room", publish="simulcast")
    await peer.join()
    figures = await peer.snapshot()
    await peer.close()

Whatever the child sends is checked like any client's input: the worker validates the
SDP, and the parent takes the participant's id from its own side, not from the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from pathlib import Path
from typing import Any

from client import Participant
from client.signal import OfferHandler
from client.simulcast_clips import simulcast_clips
from client.vp8_check import Vp8CheckReport
from sfu import Transport, Worker
from tests.support.weaknet import LineRpc, NamespaceProcess, WeakNetError
from tests.support.weaknet import Participant as NetParticipant

log = logging.getLogger(__name__)

#: The address of every host candidate in an SDP.
_HOST_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host", re.M | re.I)
#: The child's target.
PEER = "tests.weaknet.sfu_peers:HeadlessPeer.open"


def candidate_addresses(sdp: str) -> set[str]:
    """The addresses of the host candidates an SDP carries."""
    return set(_HOST_CANDIDATE.findall(sdp))


# --- the child's side ------------------------------------------------------------------


class ChannelSignal:
    """A :class:`client.signal.Signal` whose SFU is in the parent process, reached over the
    harness's channel; the parent's offers arrive through :meth:`subscribe_offer`."""

    def __init__(self, channel: LineRpc) -> None:
        self.on_ended: Any = None
        self._channel = channel
        self._on_offer: OfferHandler | None = None

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        self._on_offer = on_subscribe_offer
        await self._channel.call("connect", participant_id)

    async def publish(self, offer_sdp: str) -> str:
        answer = await self._channel.call("publish", offer_sdp)
        if not isinstance(answer, str):
            raise WeakNetError(f"the SFU answered {type(answer).__name__}, not an SDP")
        return answer

    async def subscribe_offer(self, offer: str) -> str:
        if self._on_offer is None:
            raise WeakNetError("a subscribe offer before connecting")
        return await self._on_offer(offer)

    async def close(self) -> None:
        with contextlib.suppress(WeakNetError, TimeoutError):
            await self._channel.call("leave", within=5.0)


def _size(resolution: tuple[int, int] | None) -> str | None:
    return None if resolution is None else f"{resolution[0]}x{resolution[1]}"


def check_figures(report: Vp8CheckReport) -> dict[str, Any]:
    """A :class:`Vp8CheckReport`'s figures as JSON (resolutions as ``"WxH"``)."""
    return {
        "packets": report.packets,
        "lost_packets": report.lost_packets,
        "late_packets": report.late_packets,
        "duplicate_packets": report.duplicate_packets,
        "malformed_packets": report.malformed_packets,
        "sequence_gap_count": report.sequence_gap_count,
        "ssrc_changes": report.ssrc_changes,
        "picture_id_jump_count": report.picture_id_jump_count,
        "picture_id_jumps_without_loss": sum(
            1 for jump in report.picture_id_jumps if not jump.after_loss
        ),
        "frames_assembled": report.frames_assembled,
        "frames_incomplete": report.frames_incomplete,
        "keyframes": report.keyframes,
        "frames_decoded": report.frames_decoded,
        "frames_failed": report.frames_failed,
        "frames_corrupt": report.frames_corrupt,
        "resolutions": {_size(size): count for size, count in report.resolutions.items()},
        "last_resolution": _size(report.last_resolution),
    }


class HeadlessPeer:
    """The child's served object: one :class:`client.Participant` signalling through a
    :class:`ChannelSignal`.  ``publish``: ``"simulcast"`` (a camera of three VP8 layers and
    Opus audio) or ``None`` (receives only); ``check_video`` decodes received video
    (:class:`client.vp8_check.Vp8Check`), otherwise it is counted; every subscriber sends
    a browser's receiver feedback and records its packets' arrival times."""

    def __init__(self, participant: Participant, signal: ChannelSignal) -> None:
        self.participant = participant
        self._signal = signal

    @classmethod
    async def open(
        cls,
        channel: LineRpc,
        name: str,
        publish: str | None = None,
        check_video: bool = False,
        clip_cache: str | None = None,
    ) -> HeadlessPeer:
        signal = ChannelSignal(channel)
        options: dict[str, Any] = {}
        if publish == "simulcast":  # encoded before joining (seconds of CPU, or a cache read)
            cache = Path(clip_cache) if clip_cache else None
            layers = await asyncio.to_thread(simulcast_clips, cache_dir=cache)
            options.update(audio=True, video="simulcast", simulcast_layers=layers)
        elif publish is None:
            options.update(audio=False, video=None)
        else:
            raise ValueError(f"publish is 'simulcast' or None, not {publish!r}")
        participant = Participant(
            name,
            signal,
            decode=False,
            check_video=check_video,
            feedback=True,
            arrival_times=publish is None,
            **options,
        )
        return cls(participant, signal)

    async def join(self) -> None:
        await self.participant.join()

    async def subscribe_offer(self, offer: str) -> str:
        return await self._signal.subscribe_offer(offer)

    def ended(self, reason: str) -> None:
        if self._signal.on_ended is not None:
            self._signal.on_ended(reason)

    def snapshot(self) -> dict[str, Any]:
        """What arrived so far, at ``time`` (``time.monotonic()``, every namespace's):
        per track its packets, bytes and marked packets (frames), the video check's
        figures and the receiver feedback's."""
        participant = self.participant
        tracks = []
        check = None
        for track in participant.tracks.values():
            tracks.append(
                {
                    "mid": track.mid,
                    "kind": track.kind,
                    "packets": track.packets,
                    "bytes": track.bytes,
                    "marked": track.marked,
                    "frames": track.frames,
                }
            )
            if track.check is not None:
                check = check_figures(track.check.report())
        feedback = participant.feedback
        return {
            "time": time.monotonic(),
            "tracks": tracks,
            "check": check,
            "feedback": feedback.stats() if feedback is not None else None,
        }

    def longest_gap(self, kind: str, since: float, until: float) -> float | None:
        """The longest time between two arrivals of ``kind``'s packets in [``since``,
        ``until``] (``time.monotonic()``), the edges counting as arrivals."""
        gaps = [
            track.longest_gap(since, until)
            for track in self.participant.tracks.values()
            if track.kind == kind
        ]
        known = [gap for gap in gaps if gap is not None]
        return max(known) if known else None

    async def close(self) -> None:
        await self.participant.close()


# --- the parent's side -----------------------------------------------------------------


class SfuSide:
    """The parent's end of one child's signalling: its transports on ``worker``, its
    membership of ``room``, and the addresses the SFU offered it as candidates."""

    def __init__(self, worker: Worker, room: str, participant_id: str) -> None:
        self.worker = worker
        self.room = room
        self.participant_id = participant_id
        self.process: NamespaceProcess | None = None
        self.publish_transport: Transport | None = None
        self.subscribe_transport: Transport | None = None
        #: Every host candidate address in the SDPs the SFU sent this participant.
        self.candidates: set[str] = set()
        #: Subscribe transports that closed by themselves (failed ICE, DTLS, negotiation).
        self.failures = 0

    @property
    def handlers(self) -> dict[str, Any]:
        return {"connect": self.connect, "publish": self.publish, "leave": self.leave}

    async def connect(self, participant_id: object) -> None:
        if participant_id != self.participant_id:
            raise WeakNetError(f"this child is {self.participant_id!r}, not {participant_id!r}")
        await self.leave()
        transport = await self.worker.create_transport(self.participant_id, "subscribe")
        self.subscribe_transport = transport

        async def negotiator(offer: str) -> str:
            self.candidates |= candidate_addresses(offer)
            if self.process is None:
                raise WeakNetError("no child to send the offer to")
            answer = await self.process.call("subscribe_offer", offer)
            if not isinstance(answer, str):
                raise WeakNetError(f"the child answered {type(answer).__name__}, not an SDP")
            return answer

        transport.negotiator = negotiator
        transport.on_close = self._subscribe_closed
        self.worker.router(self.room).join(self.participant_id)

    async def publish(self, offer: object) -> str:
        if not isinstance(offer, str):
            raise WeakNetError(f"an offer is an SDP string, not {type(offer).__name__}")
        if self.subscribe_transport is None:
            raise WeakNetError("publish before connect")
        if self.publish_transport is None or self.publish_transport.closed:
            self.publish_transport = await self.worker.create_transport(
                self.participant_id, "publish"
            )
        answer = await self.publish_transport.accept_offer(offer)
        self.candidates |= candidate_addresses(answer)
        return answer

    async def leave(self) -> None:
        if self.subscribe_transport is not None or self.publish_transport is not None:
            self.worker.router(self.room).leave(self.participant_id)
        transports = (self.publish_transport, self.subscribe_transport)
        self.publish_transport = self.subscribe_transport = None
        for transport in transports:
            if transport is not None:
                transport.on_close = None
                await transport.close()

    def _subscribe_closed(self, transport: Transport) -> None:
        if transport is not self.subscribe_transport:
            return
        self.failures += 1
        self.subscribe_transport = None
        self.worker.router(self.room).leave(self.participant_id)
        log.warning("weaknet.subscribe_closed", extra={"participant": self.participant_id})
        if self.process is not None:
            task = asyncio.ensure_future(self.process.call("ended", "connection_failed"))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


class RemotePeer:
    """A :class:`HeadlessPeer` in a namespace and its :class:`SfuSide` in the test."""

    def __init__(self, process: NamespaceProcess, side: SfuSide) -> None:
        self.process = process
        self.side = side

    @classmethod
    async def start(
        cls,
        worker: Worker,
        participant: NetParticipant,
        room: str,
        **options: Any,
    ) -> RemotePeer:
        """Start ``participant``'s child (``options``: :meth:`HeadlessPeer.open`'s)."""
        side = SfuSide(worker, room, participant.name)
        process = await participant.start(
            PEER,
            handlers=side.handlers,
            ready_within=60.0,  # a publisher without cached clips encodes them first
            name=participant.name,
            **options,
        )
        side.process = process
        return cls(process, side)

    async def join(self) -> None:
        await self.process.call("join", within=60.0)

    async def snapshot(self) -> dict[str, Any]:
        return await self.process.call("snapshot")

    async def longest_gap(self, kind: str, since: float, until: float) -> float | None:
        return await self.process.call("longest_gap", kind, since, until)

    async def close(self) -> None:
        await self.process.stop()
        await self.side.leave()
