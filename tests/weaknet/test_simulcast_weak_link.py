"""Issue #22's acceptance test: a simulcast camera, two subscribers on good links and one
behind a 300 kbit/s downlink, on real network links.

The SFU (:class:`sfu.Worker`, its own layer selection every 0.5 s from the subscribers'
RTCP) runs in the test's process, in the root namespace.  Every participant is a headless
client (:class:`client.Participant`) in a network namespace of its own, joined to the root
namespace by a veth pair (``tests/support/weaknet.py``), signalling over the harness's
channel (``tests/weaknet/sfu_peers.py``):

* the publisher is the headless client publishing three real VP8 encodings (320x180,
  640x360 and 1280x720 at ~150, ~500 and ~1,200 kbit/s, rids q/h/f on one m-line, as
  Chromium sends them; ``client/simulcast.py``) and Opus audio (aiortc's encoder), not
  Chromium;
* two subscribers on unshaped links count what arrives (bytes, and frames by their marker
  bits: decoding two 720p streams would take much of the machine's two cores);
* one subscriber's downlink is limited to 300 kbit/s; it decodes the video it receives
  (``client/vp8_check.py``) and records its audio packets' arrival times.

Every subscriber sends a browser's receiver feedback (receiver reports, transport-wide
congestion control feedback every 50 ms, NACK, PLI: ``client/receiver_feedback.py``): the
SFU estimates each downlink from the delay of every packet's arrival and probes it with
padding before a higher layer (``sfu/delay_based.py``, ``sfu/layer_selection.py``).

The limit is ``tc tbf`` at 300 kbit/s (a token bucket with a byte queue behind it, as an
access link shapes; ``htb`` with one class would do the same here) with ``latency`` 250 ms:
the queue holds ~12 KB, so that a packet waits at most ~330 ms (the bucket's 3 KB burst
included) before it is dropped.  A few hundred milliseconds of queue is what access links
have, and it makes an up-switch the link cannot carry show first as growing delay (the
receiver's REMB drops) and then as loss; it also carries the bottom layer's keyframe
(~7 KB, ~190 ms of the link) whole.  A shallower queue (``Shape``'s default 50 ms) drops
the tail of most of those keyframes: the test would then measure the publisher's
keyframes more than the SFU.

Measured at the receivers over a 30 s window, once the layers settled: the good links keep
the top layer (>= 600 kbit/s and >= 25 frames/s of video), the weak one gets the bottom
layer (320x180 decoded at >= 12 frames/s, no frame failing to decode, corrupt frames only
after loss and until the next keyframe) and its audio never stops for more than 200 ms;
the publisher keeps sending every layer and is told to (the SFU's REMB to it stays above
1.2 Mbit/s).  Then the limit is lifted: within 15 s the weak subscriber is on the top layer
again, on the SFU's side and in the frames it decodes.  The figures are printed as one
JSON line (``weaknet.simulcast_weak_link``) and shown in the terminal summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import pytest

from sfu import MediaSettings, Worker
from sfu.simulcast import SimulcastProducer
from tests.support.eventually import eventually
from tests.support.weaknet import Shape, WeakNet

from .sfu_peers import RemotePeer

pytestmark = pytest.mark.weaknet

log = logging.getLogger(__name__)

ROOM = "weak-link"
SHAPE = Shape(300_000, latency=0.25, kind="tbf")
#: The measurement window, once the layers settled.
WINDOW = 30.0
#: The longest the weak subscriber may take to be back on the top layer once lifted.
RECOVERY = 15.0
GOOD = ("good-1", "good-2")
NAMES = ("publisher", *GOOD, "weak")
BOTTOM, TOP = "320x180", "1280x720"


def camera(worker: Worker) -> SimulcastProducer | None:
    cameras = [
        p
        for t in worker.transports
        for p in t.producers.values()
        if isinstance(p, SimulcastProducer) and not p.closed
    ]
    return cameras[0] if cameras else None


def video_consumer(worker: Worker, subscriber: str) -> Any:
    for transport in worker.transports_of(subscriber, "subscribe"):
        for consumer in transport.consumers.values():
            if isinstance(consumer.producer, SimulcastProducer) and not consumer.closed:
                return consumer
    return None


def video_of(snapshot: dict[str, Any]) -> dict[str, Any]:
    (track,) = [t for t in snapshot["tracks"] if t["kind"] == "video"]
    return track


class Timeline:
    """Every subscriber's layer and the weak one's downlink estimate, sampled every half
    second (as often as the worker decides): what the figures and a failure's message
    show of the SFU's decisions."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.samples: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> dict[str, Any]:
        worker = self._worker
        now = time.monotonic()
        layers = {}
        for name in (*GOOD, "weak"):
            consumer = video_consumer(worker, name)
            layers[name] = None if consumer is None else consumer.layer
        weak = video_consumer(worker, "weak")
        transport = next(worker.transports_of("weak", "subscribe"), None)
        estimate = worker.layers.estimate(transport) if transport is not None else None
        producer = camera(worker)
        return {
            "t": now,
            "layers": layers,
            "switching_to": weak.switching_to if weak is not None else None,
            "estimate": estimate.available(now) if estimate is not None else None,
            "loss": round(estimate.loss(now), 3) if estimate is not None else None,
            "sending": int(estimate.sending_rate) if estimate is not None else None,
            "remb": weak.remb if weak is not None else None,
            "publisher_remb": producer.estimated_bitrate() if producer is not None else None,
        }

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.samples.append(self.sample())
            await asyncio.sleep(0.5)  # the sampling period (a measurement, not a wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, since: float, until: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if since <= s["t"] <= until]

    def story(self, since: float, last: int = 80) -> str:
        """The weak subscriber's last samples, one line each: seconds since ``since``,
        layer (``a>b`` while switching), estimate, REMB, loss, the rate sent (kbit/s)."""
        lines = []
        for s in self.samples[-last:]:
            layer = s["layers"]["weak"]
            if s["switching_to"] is not None:
                layer = f"{layer}>{s['switching_to']}"
            lines.append(
                f"{s['t'] - since:6.1f} layer {layer!s:5} estimate {(s['estimate'] or 0) // 1000:5}"
                f" remb {(s['remb'] or 0) // 1000:5} loss {s['loss']} sent"
                f" {(s['sending'] or 0) // 1000:5}"
            )
        return "\n".join(lines)


def good_figures(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The video a counting subscriber received between two snapshots: bits and frames
    (packets with the marker bit) per second."""
    b, a = video_of(before), video_of(after)
    seconds = after["time"] - before["time"]
    return {
        "video_kbit_s": round((a["bytes"] - b["bytes"]) * 8 / seconds / 1000, 1),
        "video_fps": round((a["marked"] - b["marked"]) / seconds, 2),
    }


def weak_figures(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the weak subscriber's check and feedback counted in the window (and the
    totals of what must never happen)."""
    b, a = before["check"], after["check"]
    seconds = after["time"] - before["time"]

    def grew(key: str) -> int:
        return a[key] - b[key]

    resolutions = {
        size: count - b["resolutions"].get(size, 0) for size, count in a["resolutions"].items()
    }
    video_b, video_a = video_of(before), video_of(after)
    feedback_b, feedback_a = before["feedback"], after["feedback"]
    return {
        "bottom_fps": round(resolutions.get(BOTTOM, 0) / seconds, 2),
        "resolutions": {size: count for size, count in resolutions.items() if count},
        "video_kbit_s": round((video_a["bytes"] - video_b["bytes"]) * 8 / seconds / 1000, 1),
        "frames_decoded": grew("frames_decoded"),
        "frames_corrupt": grew("frames_corrupt"),
        "frames_incomplete": grew("frames_incomplete"),
        "keyframes": grew("keyframes"),
        "lost_packets": grew("lost_packets"),
        "late_packets": grew("late_packets"),
        "malformed_packets": grew("malformed_packets"),
        "ssrc_changes": grew("ssrc_changes"),
        "picture_id_jumps_without_loss": grew("picture_id_jumps_without_loss"),
        # losses repaired by retransmission (and those given up, with a PLI)
        "nack": {
            key: feedback_a[key] - feedback_b[key]
            for key in ("nacked", "recovered", "abandoned", "plis_sent")
        },
        "total": {
            "frames_failed": a["frames_failed"],
            "malformed_packets": a["malformed_packets"],
            "picture_id_jumps_without_loss": a["picture_id_jumps_without_loss"],
        },
    }


async def test_a_subscriber_behind_300_kbit_s_gets_the_bottom_layer_and_the_others_keep_the_top(
    net: WeakNet, request: pytest.FixtureRequest, record_property: Any
) -> None:
    began = time.monotonic()
    # the namespaces before the worker's transports: its ICE gathers host candidates on
    # every interface when a transport is negotiated, the veths' server addresses included
    links = {name: await net.add(name) for name in NAMES}
    await links["weak"].shape("down", SHAPE)
    worker = Worker(MediaSettings(layer_interval=0.5))
    cache = getattr(request.config, "cache", None)  # the clips, encoded once per machine
    clip_cache = str(cache.mkdir("weaknet-simulcast-clips")) if cache is not None else None
    peers: dict[str, RemotePeer] = {}
    timeline = Timeline(worker)
    try:
        started = await asyncio.gather(
            RemotePeer.start(
                worker, links["publisher"], ROOM, publish="simulcast", clip_cache=clip_cache
            ),
            *(RemotePeer.start(worker, links[name], ROOM) for name in GOOD),
            RemotePeer.start(worker, links["weak"], ROOM, check_video=True),
        )
        peers = dict(zip(NAMES, started, strict=True))
        for name in (*GOOD, "weak", "publisher"):
            await peers[name].join()

        def all_layers_arrive() -> bool:
            producer = camera(worker)
            return producer is not None and all(producer.active_layers())

        await eventually(all_layers_arrive, 30, what="the camera's three layers reach the SFU")
        producer = camera(worker)
        assert producer is not None
        consumers = {name: video_consumer(worker, name) for name in (*GOOD, "weak")}
        assert all(consumers.values()), consumers
        weak = consumers["weak"]
        # each namespace reaches the SFU over its own link: the worker offered the veths'
        # addresses among its candidates
        for name, peer in peers.items():
            offered = sorted(peer.side.candidates)
            assert links[name].server_address in offered, (name, offered)
            assert peer.side.failures == 0, name

        async def settled() -> bool:
            if any(consumers[n].layer != 2 or consumers[n].switching_to is not None for n in GOOD):
                return False
            if weak.layer != 0 or weak.switching_to is not None:
                return False
            check = (await peers["weak"].snapshot())["check"]
            return check is not None and check["last_resolution"] == BOTTOM

        timeline.start()
        await eventually(
            settled,
            40,
            what="the good links on the top layer, the weak one on the bottom layer",
            interval=0.25,
            details=lambda: timeline.story(began),
        )
        figures: dict[str, Any] = {"settled_after_s": round(time.monotonic() - began, 1)}

        # --- the window ---------------------------------------------------------------
        before = {name: await peers[name].snapshot() for name in NAMES}
        published_before = [layer.bytes for layer in producer.layers]
        switches_before = weak.layer_switches
        window_start = time.monotonic()
        await asyncio.sleep(WINDOW)  # the measurement window
        window_end = time.monotonic()
        after = {name: await peers[name].snapshot() for name in NAMES}
        published_after = [layer.bytes for layer in producer.layers]
        in_window = timeline.between(window_start, window_end)

        for name in GOOD:
            figures[name] = {
                **good_figures(before[name], after[name]),
                "layers": sorted({s["layers"][name] for s in in_window}, key=str),
            }
        figures["weak"] = {
            **weak_figures(before["weak"], after["weak"]),
            "audio_longest_gap_ms": round(
                1000
                * await peers["weak"].longest_gap(
                    "audio", before["weak"]["time"], after["weak"]["time"]
                ),
                1,
            ),
            "layers": sorted({s["layers"]["weak"] for s in in_window}, key=str),
            "layer_switches": weak.layer_switches - switches_before,
        }
        seconds = window_end - window_start
        told = [s["publisher_remb"] for s in in_window if s["publisher_remb"] is not None]
        figures["publisher"] = {
            "layers_kbit_s": [
                round((a - b) * 8 / seconds / 1000, 1)
                for a, b in zip(published_after, published_before, strict=True)
            ],
            "received_kbit_s": round(
                (sum(published_after) - sum(published_before)) * 8 / seconds / 1000, 1
            ),
            "remb_min_kbit_s": round(min(told) / 1000, 1) if told else None,
        }

        # --- the limit lifted ---------------------------------------------------------
        await links["weak"].shape("down", None)
        lifted_at = time.monotonic()

        async def back_on_top() -> bool:
            if weak.layer != 2 or weak.switching_to is not None:
                return False
            check = (await peers["weak"].snapshot())["check"]
            return check is not None and check["last_resolution"] == TOP

        try:
            await eventually(back_on_top, RECOVERY, interval=0.1)
            figures["recovered_in_s"] = round(time.monotonic() - lifted_at, 2)
        except AssertionError:
            figures["recovered_in_s"] = None
        figures["wall_s"] = round(time.monotonic() - began, 1)

        line = json.dumps({"weaknet.simulcast_weak_link": figures})
        print(line)
        log.info("weaknet.simulcast_weak_link", extra={"figures": figures})
        record_property("figures", line)
        story = timeline.story(window_start, last=len(timeline.samples))
        print("the weak subscriber (s since the window):\n" + story)

        # every criterion is checked, and every one missed is named at once
        missed = []
        for name in GOOD:
            got = figures[name]
            if got["video_kbit_s"] < 600 or got["video_fps"] < 25 or got["layers"] != [2]:
                missed.append(f"{name} left the top layer: {got}")
        got = figures["weak"]
        if got["bottom_fps"] < 12:
            missed.append(f"weak: {got['bottom_fps']} frames/s of {BOTTOM} decoded (< 12)")
        if got["total"]["frames_failed"]:
            missed.append(f"weak: {got['total']['frames_failed']} frames failed to decode")
        # corrupt frames only after loss, until the next keyframe: nothing else may start
        # them (a malformed packet, a picture-ID jump, another SSRC)
        for key in ("malformed_packets", "picture_id_jumps_without_loss", "ssrc_changes"):
            if got[key]:
                missed.append(f"weak: {got[key]} {key.replace('_', ' ')} in the window")
        if got["frames_corrupt"] and not got["lost_packets"]:
            missed.append(f"weak: {got['frames_corrupt']} corrupt frames without loss")
        if got["audio_longest_gap_ms"] > 200:
            missed.append(f"weak: audio stopped for {got['audio_longest_gap_ms']} ms (> 200)")
        got = figures["publisher"]
        if got["received_kbit_s"] < 1200 or (got["remb_min_kbit_s"] or 0) < 1200:
            missed.append(f"the publisher sends or is told less than 1.2 Mbit/s: {got}")
        if figures["recovered_in_s"] is None:
            missed.append(f"weak: not back on the top layer {RECOVERY:g} s after the lift")
        assert not missed, "\n".join(
            [*missed, json.dumps(figures), "the weak subscriber (s since the window):", story]
        )
    finally:
        await timeline.stop()
        for peer in peers.values():
            with contextlib.suppress(Exception):
                await peer.close()
        await worker.close()
