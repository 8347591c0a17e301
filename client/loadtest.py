"""``caucus loadtest``: simulated participants in live rooms, measured per received track.

Each participant signs in with an account made by ``caucus loadtest --setup`` (see
:mod:`client.loadtest_setup`), joins its case's live room over socket.io, publishes
pre-encoded, time-stamped Opus and VP8 (:mod:`client.stamped`; nothing is encoded while
the test runs), packetized once and sent straight to the socket
(:mod:`client.direct_publish`), and counts what it receives from every other publisher
without decoding (:mod:`client.track_stats`).  Subscribers only receive.

A run: participants join at ``ramp`` per second; the tester waits until every expected
track delivered a frame (at most ``settle_timeout`` seconds), then measures for
``duration`` seconds.  The server's ``GET /metrics`` is read at both ends of that window
for its forwarded packets and CPU seconds.  If a participant's socket drops and the
server no longer answers ``/healthz``, the run stops at once with a partial report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from prometheus_client.parser import text_string_to_metric_families

from sfu import rtc

from .direct_publish import DirectPublisher, PacketizedClip, packetize_opus, packetize_vp8
from .loadtest_setup import ApiSession, SetupError, read_accounts
from .participant import receiving_transceiver
from .receive_poller import ReceivePoller
from .report import summarize, summary_text, track_table
from .simulcast import SimulcastVideo, negotiate
from .simulcast_clips import LayerClip
from .socket_signal import NAMESPACE, SocketSignal
from .stamped import make_clips
from .track_stats import TrackStats, watch_receiver

EXIT_OK = 0
EXIT_TRACKS_MISSING = 1
EXIT_ABORTED = 3


@dataclass
class LoadConfig:
    url: str
    accounts: Path
    rooms: int = 1
    publishers: int = 2
    subscribers: int = 0
    audio_only: bool = False
    video_bitrate: int = 500_000
    duration: float = 30.0
    ramp: float = 5.0
    insecure: bool = False
    json_path: Path | None = None
    metrics_token: str | None = None
    admin_user: str | None = None
    admin_password: str | None = None
    settle_timeout: float = 20.0
    join_timeout: float = 30.0
    progress: bool = True
    table: bool = True


class LoadSignal(SocketSignal):
    """A :class:`SocketSignal` that reports an unexpected loss of its socket."""

    def __init__(self, *args: Any, on_lost: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost = False
        self._on_lost = on_lost
        self._closing = False

    async def connect(self, participant_id: str, on_subscribe_offer) -> None:
        await super().connect(participant_id, on_subscribe_offer)
        assert self._sio is not None  # connect() opened it
        self._sio.on("disconnect", self._disconnected, namespace=NAMESPACE)

    async def _disconnected(self, *_reason: Any) -> None:
        if not self._closing:
            self.lost = True
            self._on_lost()

    async def close(self) -> None:
        self._closing = True
        await super().close()


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


@dataclass
class LoadParticipant:
    """One simulated participant: a publisher (audio, and video unless audio-only) or a
    subscriber; either way it measures every track it receives."""

    room: int
    case_id: str
    account: dict[str, str]
    publishes: bool
    signal: LoadSignal
    tracks: dict[str, TrackStats] = field(default_factory=dict)
    joined: bool = False
    error: str | None = None
    join_seconds: float | None = None
    #: reads the sockets of every connection of the run on a timer (compiled module)
    poller: ReceivePoller | None = None
    _publish_pc: RTCPeerConnection | None = None
    _subscribe_pc: RTCPeerConnection | None = None
    _publisher: DirectPublisher | None = None
    _simulcast: SimulcastVideo | None = None

    @property
    def name(self) -> str:
        return self.account["display_name"]

    @property
    def publisher(self) -> DirectPublisher | None:
        """What this participant publishes (its streams' counters), once joined."""
        return self._publisher

    @property
    def simulcast(self) -> SimulcastVideo | None:
        """The simulcast video published (:meth:`enter` with ``simulcast``), once joined."""
        return self._simulcast

    async def join(self, audio: PacketizedClip, video: PacketizedClip | None) -> None:
        """Join the room; a publisher publishes ``audio`` and ``video`` (when given)."""
        began = time.monotonic()
        clips = [audio] if video is None else [audio, video]
        await self.enter(clips if self.publishes else [])
        self.joined = True
        self.join_seconds = time.monotonic() - began

    async def enter(
        self, clips: list[PacketizedClip], simulcast: Sequence[LayerClip] | None = None
    ) -> None:
        """Join the room and publish ``clips`` (none: only receive), and with
        ``simulcast`` a simulcast video of those layers' clips (:attr:`simulcast`)."""
        await self.signal.connect(self.account["username"], self._on_offer)
        if not clips and simulcast is None:
            return
        pc = self._publish_pc = _pc()
        if self.poller is not None:
            # what comes back is the SFU's feedback, which a looped clip ignores (a
            # simulcast video answers keyframe requests)
            rtc.receive_directly(pc, self.poller, rtcp=simulcast is not None)
        publisher = self._publisher = DirectPublisher(pc)
        for clip in clips:
            publisher.add(clip)
        video = None
        if simulcast is not None:
            video = self._simulcast = SimulcastVideo(publisher, simulcast)
        await negotiate(pc, self.signal.publish, video)
        publisher.start()

    def flowing(self) -> int:
        """Tracks that delivered a packet."""
        return sum(1 for stats in self.tracks.values() if stats.packets)

    async def _on_offer(self, offer: str) -> str:
        pc = self._subscribe_pc
        if pc is None:
            pc = self._subscribe_pc = _pc()
            pc.on("track", self._on_track)
            rtc.receive_directly(pc, self.poller, rtcp=False)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver, mid = receiving_transceiver(self._subscribe_pc, track)
        stats = TrackStats(mid, track.kind, appeared_at=time.monotonic())
        self.tracks[mid] = stats
        watch_receiver(transceiver.receiver, stats)

    def owner(self, mid: str) -> str | None:
        """The display name of the publisher whose track ``mid`` carries."""
        track = self.signal.tracks.get(mid)
        return track["display_name"] if track else None

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.signal.close()
        for pc in (self._publish_pc, self._subscribe_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await pc.close()


class ServerMetrics:
    """Reads the server's ``GET /metrics`` with a bearer token or an admin session."""

    def __init__(self, config: LoadConfig) -> None:
        self._config = config
        self.note: str | None = None
        self._admin: ApiSession | None = None

    @property
    def available(self) -> bool:
        c = self._config
        return bool(c.metrics_token or (c.admin_user and c.admin_password))

    async def read(self) -> dict[str, float] | None:
        c = self._config
        if not self.available:
            self.note = "no figures: pass --metrics-token, or --admin-user and an admin password"
            return None
        try:
            if c.metrics_token:
                text = await _get_text(
                    c.url + "/metrics",
                    c.insecure,
                    {"Authorization": f"Bearer {c.metrics_token}"},
                )
            else:
                if self._admin is None:
                    assert c.admin_user and c.admin_password  # self.available
                    self._admin = ApiSession(c.url, insecure=c.insecure, timeout=10)
                    await self._admin.sign_in(c.admin_user, c.admin_password)
                text = await self._admin.text("/metrics")
        except (SetupError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.note = f"no figures: GET /metrics failed: {exc}"
            return None
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.labels:
                    values[sample.name] = sample.value
                else:
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
        return values

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.__aexit__(None, None, None)


async def _get_text(url: str, insecure: bool, headers: dict[str, str]) -> str:
    connector = aiohttp.TCPConnector(ssl=False if insecure else True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        async with http.get(url, headers=headers) as response:
            response.raise_for_status()
            return await response.text()


async def server_alive(url: str, insecure: bool) -> bool:
    try:
        await _get_text(url + "/healthz", insecure, {})
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
    return True


def server_figures(before: dict[str, float], after: dict[str, float], elapsed: float) -> dict:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    forwarded = delta("caucus_media_forwarded_packets_total")
    # the signaling process, plus its media worker processes when it has any
    cpu = delta("process_cpu_seconds_total") + delta("caucus_media_workers_cpu_seconds_total")
    return {
        "participants": int(after.get("caucus_media_participants", 0)),
        "rooms": int(after.get("caucus_media_rooms", 0)),
        "workers": int(after.get("caucus_media_workers", 0)),
        "producers": int(after.get("caucus_media_producers", 0)),
        "consumers": int(after.get("caucus_media_consumers", 0)),
        "forwarded_packets": int(forwarded),
        "forwarded_pps": round(forwarded / elapsed, 1),
        "forwarded_mbps": round(delta("caucus_media_forwarded_bytes_total") * 8 / elapsed / 1e6, 2),
        "received_pps": round(delta("caucus_media_received_packets_total") / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_pct": round(100 * cpu / elapsed, 1),
        "cpu_us_per_forwarded_packet": round(cpu * 1e6 / forwarded, 2) if forwarded else None,
        "forwarded_pps_per_core": round(forwarded / cpu) if cpu > 0 else None,
        "nacks_received": int(delta("caucus_media_nacks_received_total")),
        "plis_received": int(delta("caucus_media_plis_received_total")),
        "retransmitted_packets": int(delta("caucus_media_retransmitted_packets_total")),
        "dropped_packets": int(delta("caucus_media_dropped_packets_total")),
    }


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


class LoadTest:
    """One run of the load test; :meth:`run` returns the report and the exit code."""

    def __init__(self, config: LoadConfig, out=sys.stdout, err=sys.stderr) -> None:
        self.config = config
        self.participants: list[LoadParticipant] = []
        self.aborted: str | None = None
        self._abort = asyncio.Event()
        self._out = out
        self._err = err
        self._checking = False
        self._check_task: asyncio.Task[None] | None = None
        self._began = time.monotonic()
        self._window_start: float | None = None
        self._window_end: float | None = None
        self._last_progress = (0, 0, 0.0)
        self._poller: ReceivePoller | None = None

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> tuple[dict[str, Any], int]:
        c = self.config
        accounts = read_accounts(c.accounts)
        per_room = c.publishers + c.subscribers
        if len(accounts["rooms"]) < c.rooms or any(
            len(room["accounts"]) < per_room for room in accounts["rooms"][: c.rooms]
        ):
            raise SetupError(
                "too_few_accounts",
                f"{c.accounts} has fewer than {c.rooms} rooms of {per_room} accounts; "
                "run caucus loadtest --setup with these numbers",
            )
        cpu_at_start = _cpu()
        opus, vp8 = make_clips(c.video_bitrate, c.audio_only)
        audio = packetize_opus(opus)
        video = None if vp8 is None else packetize_vp8(vp8)
        clip_cpu = _cpu() - cpu_at_start
        if rtc.FASTRECEIVE:
            self._poller = ReceivePoller()
        for index, room in enumerate(accounts["rooms"][: c.rooms]):
            for number, account in enumerate(room["accounts"][:per_room]):
                signal = LoadSignal(
                    c.url,
                    account["username"],
                    account["password"],
                    room["case_id"],
                    insecure=c.insecure,
                    on_lost=self._socket_lost,
                )
                self.participants.append(
                    LoadParticipant(
                        index + 1,
                        room["case_id"],
                        account,
                        number < c.publishers,
                        signal,
                        poller=self._poller,
                    )
                )
        metrics = ServerMetrics(c)
        progress = asyncio.ensure_future(self._progress())
        cpu_window = None
        before = after = None
        try:
            await self._join_all(audio, video)
            if not self._abort.is_set():
                await self._settle()
            if not self._abort.is_set():
                before = await metrics.read()
                cpu_before = _cpu()
                self._read_sockets()
                self._window_start = time.monotonic()
                for participant in self.participants:
                    for stats in participant.tracks.values():
                        stats.start_window()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(c.duration):
                        await self._abort.wait()
                self._read_sockets()
                self._window_end = time.monotonic()
                cpu_window = _cpu() - cpu_before
                if not self._abort.is_set():
                    after = await metrics.read()
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
            if self._window_end is None:
                self._window_end = time.monotonic()
            if cpu_window is None:
                cpu_window = _cpu() - cpu_at_start - clip_cpu
            report = self._report(before, after, cpu_window, clip_cpu, metrics.note)
            await metrics.close()
            await asyncio.gather(*(p.close() for p in self.participants))
            if self._poller is not None:
                self._poller.close()
        if self.aborted:
            return report, EXIT_ABORTED
        summary = report["summary"]
        ok = summary["tracks_received"] == summary["tracks_expected"]
        return report, EXIT_OK if ok else EXIT_TRACKS_MISSING

    def _read_sockets(self) -> None:
        """Count what the sockets hold now (the poller reads them on a timer)."""
        if self._poller is not None:
            self._poller.poll()

    async def _join_all(self, audio: PacketizedClip, video: PacketizedClip | None) -> None:
        c = self.config
        start = time.monotonic()

        async def join(index: int, participant: LoadParticipant) -> None:
            delay = start + index / c.ramp - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._abort.is_set():
                participant.error = "not started: the run was aborted"
                return
            try:
                async with asyncio.timeout(c.join_timeout):
                    await participant.join(audio, video)
            except Exception as exc:
                participant.error = f"{type(exc).__name__}: {exc}"
                self._check_server()

        joins = [asyncio.ensure_future(join(i, p)) for i, p in enumerate(self.participants)]
        done: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*joins))
        aborted: asyncio.Future[Any] = asyncio.ensure_future(self._abort.wait())
        await asyncio.wait([done, aborted], return_when=asyncio.FIRST_COMPLETED)
        aborted.cancel()
        if not done.done():
            for task in joins:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await done
        for participant in self.participants:
            if not participant.joined and participant.error is None:
                participant.error = "not joined: the run was aborted"

    async def _settle(self) -> None:
        """Wait until every expected track has delivered a frame, or the settle timeout."""
        deadline = time.monotonic() + self.config.settle_timeout
        while time.monotonic() < deadline and not self._abort.is_set():
            rows = self._rows()
            if all(r["frames_total"] > 0 for r in rows if r["expected"]):
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await self._abort.wait()

    # --- losing the server --------------------------------------------------------------

    def _socket_lost(self) -> None:
        self._check_server()

    def _check_server(self) -> None:
        if self._checking or self._abort.is_set():
            return
        self._checking = True

        async def check() -> None:
            try:
                if not await server_alive(self.config.url, self.config.insecure):
                    self.aborted = "lost the server: /healthz does not answer"
                    self._abort.set()
                    self._say(f"caucus loadtest: {self.aborted}; stopping", force=True)
            finally:
                self._checking = False

        self._check_task = asyncio.ensure_future(check())

    # --- figures ------------------------------------------------------------------------

    def _expected(self) -> set[tuple[str, str, str]]:
        """(subscriber, publisher, kind) of every track that should arrive."""
        kinds = ("audio",) if self.config.audio_only else ("audio", "video")
        expected = set()
        for receiver in self.participants:
            for sender in self.participants:
                if sender.publishes and sender.room == receiver.room and sender is not receiver:
                    for kind in kinds:
                        expected.add((receiver.name, sender.name, kind))
        return expected

    def _rows(self) -> list[dict[str, Any]]:
        expected = self._expected()
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        for receiver in self.participants:
            for mid, stats in receiver.tracks.items():
                owner = receiver.owner(mid) or f"mid {mid}"
                key = (receiver.name, owner, stats.kind)
                figures = stats.figures(self._window_end)
                rows.append(
                    {
                        "room": receiver.room,
                        "subscriber": receiver.name,
                        "publisher": owner,
                        "kind": stats.kind,
                        "mid": mid,
                        "expected": key in expected,
                        "received": stats.packets > 0,
                        "packets_total": stats.packets,
                        "frames_total": stats.frames,
                        **figures,
                    }
                )
                seen.add(key)
        for subscriber, publisher, kind in sorted(expected - seen):
            room = next(p.room for p in self.participants if p.name == subscriber)
            rows.append(
                {
                    "room": room,
                    "subscriber": subscriber,
                    "publisher": publisher,
                    "kind": kind,
                    "mid": None,
                    "expected": True,
                    "received": False,
                    "packets_total": 0,
                    "frames_total": 0,
                    **TrackStats("", kind, 0.0).figures(0.0),
                    "time_to_first_frame_ms": None,
                }
            )
        rows.sort(key=lambda r: (r["room"], r["subscriber"], r["publisher"], r["kind"]))
        return rows

    def _report(
        self,
        before: dict | None,
        after: dict | None,
        client_cpu: float,
        clip_cpu: float,
        server_note: str | None,
    ) -> dict[str, Any]:
        c = self.config
        rows = self._rows()
        latencies = [
            value
            for p in self.participants
            for stats in p.tracks.values()
            for value in stats.latencies_ms
        ]
        ttffs = [r["time_to_first_frame_ms"] for r in rows if r["time_to_first_frame_ms"]]
        start = self._window_start or self._began
        end = self._window_end if self._window_end is not None else time.monotonic()
        elapsed = max(1e-6, end - start)
        publishers = sum(1 for p in self.participants if p.publishes and p.joined)
        received = sum(r["packets"] for r in rows)
        report: dict[str, Any] = {
            "config": {
                "url": c.url,
                "rooms": c.rooms,
                "publishers": c.publishers,
                "subscribers": c.subscribers,
                "audio_only": c.audio_only,
                "video_bitrate": c.video_bitrate,
                "duration": c.duration,
                "ramp": c.ramp,
            },
            "aborted": self.aborted,
            "window_seconds": round(elapsed, 2) if self._window_start else 0.0,
            "participants": {
                "expected": len(self.participants),
                "joined": sum(1 for p in self.participants if p.joined),
                "join_seconds_max": max(
                    (p.join_seconds for p in self.participants if p.join_seconds), default=None
                ),
                "join_errors": [
                    {"participant": p.name, "error": p.error} for p in self.participants if p.error
                ],
            },
            "summary": summarize(rows, latencies, ttffs),
            "client": {
                "cpu_seconds": round(client_cpu, 3),
                "cpu_pct": round(100 * client_cpu / elapsed, 1),
                "publishers": publishers,
                "cpu_ms_per_s_per_publisher": (
                    round(1000 * client_cpu / elapsed / publishers, 2) if publishers else None
                ),
                "cpu_us_per_received_packet": (
                    round(client_cpu * 1e6 / received, 1) if received else None
                ),
                "clip_encoding_cpu_seconds": round(clip_cpu, 3),
            },
            "server": (
                server_figures(before, after, elapsed) if before and after is not None else None
            ),
            "server_note": server_note if not (before and after) else None,
            "tracks": rows,
        }
        if before and after is None and not server_note:
            report["server_note"] = "no figures: the run ended before the second reading"
        return report

    # --- progress -----------------------------------------------------------------------

    def _say(self, text: str, force: bool = False) -> None:
        if self.config.progress or force:
            print(text, file=self._err, flush=True)

    async def _progress(self) -> None:
        tty = self._err.isatty()
        tick = 0
        while True:
            await asyncio.sleep(1)
            tick += 1
            for participant in self.participants:
                for stats in participant.tracks.values():
                    stats.collect()  # latency samples waiting in compiled counters
            if not self.config.progress or (not tty and tick % 5):
                continue
            now = time.monotonic()
            tracks = [t for p in self.participants for t in p.tracks.values()]
            flowing = sum(1 for t in tracks if t.last_packet_at and now - t.last_packet_at < 2)
            packets = sum(t.packets for t in tracks)
            expected = sum(t.expected for t in tracks)
            last_packets, last_expected, last_at = self._last_progress
            self._last_progress = (packets, expected, now)
            got, want = packets - last_packets, expected - last_expected
            loss = 100 * max(0, want - got) / want if want > 0 else 0.0
            pps = got / (now - last_at) if last_at else 0.0
            joined = sum(1 for p in self.participants if p.joined)
            errors = sum(1 for p in self.participants if p.error)
            phase = "measuring" if self._window_start else "joining"
            line = (
                f"{now - self._began:6.1f}s {phase}: joined {joined}/{len(self.participants)}"
                f"  errors {errors}  tracks flowing {flowing}/{len(self._expected())}"
                f"  {pps:,.0f} pkt/s  loss {loss:.2f}%"
            )
            if tty:
                print("\r" + line.ljust(100), end="", file=self._err, flush=True)
            else:
                print(line, file=self._err, flush=True)

    # --- output -------------------------------------------------------------------------

    def print_report(self, report: dict[str, Any]) -> None:
        if self._err.isatty() and self.config.progress:
            print(file=self._err)
        if self.config.table:
            print(track_table(report["tracks"]), file=self._out)
            print(file=self._out)
        print(summary_text(report), file=self._out, flush=True)


async def run_loadtest(config: LoadConfig) -> int:
    test = LoadTest(config)
    try:
        report, code = await test.run()
    except SetupError as exc:
        print(f"caucus loadtest: {exc.message}", file=sys.stderr)
        return 2
    test.print_report(report)
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(report, indent=2) + "\n")
    if code == EXIT_TRACKS_MISSING:
        missing = report["summary"]["tracks_expected"] - report["summary"]["tracks_received"]
        print(f"caucus loadtest: {missing} expected tracks were never received", file=sys.stderr)
    elif code == EXIT_ABORTED:
        print(f"caucus loadtest: run aborted: {report['aborted']}", file=sys.stderr)
    return code
