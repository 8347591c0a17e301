"""Benchmark room moves: from the mediator's ``live.move`` to the moved participant's first
decoded video frame from a publisher of the new room.

A ``caucus serve`` in its own process (SQLite, temporary data directory); headless
participants in this process: the mediator and three parties, each publishing a small
live-encoded VP8 pattern (so publishers answer keyframe requests as browsers do) whose
top-left block encodes who sent it.  Rooms: main (mediator + one party), "A" and "B"
(one party each); a fourth participant is moved round main → A → B → main …, and the time
to its first decoded frame from someone of the new room is measured per move.  Prints::

    {"runs": [{"workers": 0, "moves": 20, "move_to_first_frame_ms_p50": ...,
               "move_to_first_frame_ms_p95": ...}, {"workers": 1, ...}]}

    .venv/bin/python bench/move_latency.py --json [--moves 20] [--workers 0,1]

With ``--workers 0`` the SFU runs in the server process; with 1, in a media worker process
behind the signaling process (every move is forwarded over the node-worker channel).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time

import aiohttp
import av

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from client import Participant, SocketSignal
from client.media import VIDEO_TIME_BASE, PatternVideoTrack, pattern_frame
from client.participant import ReceivedTrack

PASSWORD = "bench-lantern-meadow-4412"
WIDTH, HEIGHT, FPS = 160, 120, 15
INTAKE = {
    "process": "mediation",
    "title": "Move latency",
    "case_type": "commercial lease",
    "description": "Benchmark",
    "parties": [{"name": "A", "side": "claimant"}, {"name": "B", "side": "respondent"}],
    "attorneys": [],
    "filed_in_court": False,
    "requested_dates": [],
}


class MarkedVideoTrack(PatternVideoTrack):
    """A live-encoded pattern whose top-left 32x32 block has the luma ``mark``."""

    def __init__(self, mark: int) -> None:
        super().__init__(WIDTH, HEIGHT, FPS)
        self._mark = mark

    async def recv(self) -> av.VideoFrame:
        pts = await self._pacer.next()
        self._frames += 1
        frame = pattern_frame(WIDTH, HEIGHT, self._frames * 4)
        luma = frame.planes[0]
        rows = bytearray(bytes(luma))
        block = bytes([self._mark]) * 32
        for y in range(32):
            rows[y * luma.line_size : y * luma.line_size + 32] = block
        luma.update(bytes(rows))
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        return frame


def mark_of(index: int) -> int:
    return 30 + 45 * index


def who(frame: av.VideoFrame) -> int:
    plane = frame.planes[0]
    data = bytes(plane)
    values = [data[y * plane.line_size + x] for y in range(8, 24, 4) for x in range(8, 24, 4)]
    return round((sum(values) / len(values) - 30) / 45)


class BenchParticipant(Participant):
    def __init__(self, index: int, signal: SocketSignal) -> None:
        super().__init__(f"p{index}", signal, audio=False)
        self.index = index
        self.frames: list[tuple[float, int]] = []  # (monotonic time, publisher index)

    async def publish(self) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from client.participant import _configuration

        pc = self._publish_pc = RTCPeerConnection(_configuration())
        track = MarkedVideoTrack(mark_of(self.index))
        self._sources.append(track)
        pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.signal.publish(pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _consume(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames.append((time.monotonic(), who(frame)))
                self._notify()
        except MediaStreamError:
            pass


DRAINS: set[asyncio.Future[None]] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def caucus_command() -> list[str]:
    caucus = os.path.join(os.path.dirname(sys.executable), "caucus")
    return [caucus] if os.path.exists(caucus) else [sys.executable, "-m", "signaling.cli"]


async def start_server(
    data_dir: str, workers: int
) -> tuple[asyncio.subprocess.Process, str, str, str]:
    command = caucus_command()
    process = await asyncio.create_subprocess_exec(
        *command,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--data-dir",
        data_dir,
        "--workers",
        str(workers),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CAUCUS_LOG_LEVEL": "WARNING"},
    )
    found: dict[str, str] = {}
    patterns = {
        "url": re.compile(r"^Caucus listening on (https://\S+?)/?$"),
        "user": re.compile(r"^Admin user: (\S+)$"),
        "password": re.compile(r"^One-time password: (\S+)$"),
    }
    async with asyncio.timeout(60):
        while len(found) < 3:
            line = (await process.stdout.readline()).decode().strip()
            if not line and process.returncode is not None:
                raise RuntimeError("the server exited")
            for key, pattern in patterns.items():
                match = pattern.match(line)
                if match:
                    found[key] = match.group(1)

    async def drain() -> None:
        while await process.stdout.readline():
            pass

    DRAINS.add(asyncio.ensure_future(drain()))
    return process, found["url"], found["user"], found["password"]


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False), cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def call(self, method: str, path: str, body: dict | None = None) -> dict:
        if not self.csrf:
            async with self.http.get(self.base + "/api/session") as response:
                self.csrf = (await response.json())["csrf_token"]
        async with self.http.request(
            method, self.base + path, json=body, headers={"X-CSRF-Token": self.csrf}
        ) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {payload}")
            return payload

    async def sign_in(self, username: str, password: str, new: str | None = None) -> None:
        body = await self.call("POST", "/api/login", {"username": username, "password": password})
        if new and body.get("stage") != "active":
            await self.call(
                "POST", "/api/account/password", {"current_password": password, "new_password": new}
            )


async def prepare(base: str, admin_user: str, admin_password: str) -> tuple[str, list[str]]:
    """A case with a neutral and four parties; answers the case id and the usernames
    (the neutral first)."""
    admin = Api(base)
    neutral = Api(base)
    try:
        await admin.sign_in(admin_user, admin_password, PASSWORD)
        made = await admin.call(
            "POST",
            "/api/admin/users",
            {"username": "mediator", "role": "neutral", "display_name": "Mediator"},
        )
        await neutral.sign_in("mediator", made["one_time_password"], PASSWORD)
        case_id = (await neutral.call("POST", "/api/cases", INTAKE))["case"]["id"]
        names = ["mediator"]
        for index in range(1, 5):
            invitation = await neutral.call(
                "POST",
                f"/api/cases/{case_id}/invitations",
                {"role": "party", "display_name": f"Party {index}", "represents": None},
            )
            guest = Api(base)
            await guest.call(
                "POST",
                f"/api/invitations/{invitation['token']}/accept",
                {"username": f"party{index}", "password": PASSWORD},
            )
            await guest.http.close()
            names.append(f"party{index}")
        return case_id, names
    finally:
        await admin.http.close()
        await neutral.http.close()


async def run(moves: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        process, base, admin_user, admin_password = await start_server(data_dir, workers)
        people: list[BenchParticipant] = []
        try:
            case_id, names = await prepare(base, admin_user, admin_password)
            for index, name in enumerate(names):
                signal = SocketSignal(base, name, PASSWORD, case_id, insecure=True)
                people.append(BenchParticipant(index, signal))
                await people[-1].join()
            mediator = people[0].signal
            users = [p.signal.live["you"]["user_id"] for p in people]
            room_a = await mediator.call("live.room.create", {"case_id": case_id, "name": "A"})
            room_b = await mediator.call("live.room.create", {"case_id": case_id, "name": "B"})
            rooms = {"main": {0, 1}, room_a["room_id"]: {2}, room_b["room_id"]: {3}}
            moves_body = {users[i]: room for room, members in rooms.items() for i in members}
            await mediator.call("live.move_many", {"case_id": case_id, "moves": moves_body})
            subject = people[4]
            order = [room_a["room_id"], room_b["room_id"], "main"]
            samples = []
            for step in range(moves + 1):
                target = order[step % len(order)]
                wanted = rooms[target]
                started = time.monotonic()
                await mediator.call(
                    "live.move", {"case_id": case_id, "user_id": users[4], "room_id": target}
                )
                async with asyncio.timeout(15):
                    await subject.wait_until(
                        lambda p, t=started, w=wanted: any(
                            at >= t and sender in w for at, sender in p.frames
                        )
                    )
                first = min(
                    at for at, sender in subject.frames if at >= started and sender in wanted
                )
                if step:  # the first move also waits for the decoder to start: not counted
                    samples.append((first - started) * 1000)
                # let the new room settle before the next move
                async with asyncio.timeout(15):
                    await subject.wait_until(
                        lambda p, t=first: sum(1 for at, _ in p.frames if at > t) >= FPS // 2
                    )
        finally:
            for person in people:
                with contextlib.suppress(Exception):
                    await person.close()
            process.terminate()
            await process.wait()
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {
        "workers": workers,
        "moves": len(samples),
        "move_to_first_frame_ms_p50": round(statistics.median(samples), 1),
        "move_to_first_frame_ms_p95": round(p95, 1),
        "move_to_first_frame_ms_max": round(samples[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--workers",
        default="0,1",
        help="media worker counts to measure in turn (0: media in the server process; "
        "default 0,1: the cost of the worker hop, in one run)",
    )
    args = parser.parse_args()
    results = [asyncio.run(run(args.moves, int(n))) for n in args.workers.split(",")]
    result = results[0] if len(results) == 1 else {"runs": results}
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
