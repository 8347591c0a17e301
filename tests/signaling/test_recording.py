"""Video messages and hearing recordings through the real app: a headless client records
into a space over ``/recording``; the space lists it, the vault holds it encrypted, the
download route serves a playable WebM (ranges included); the server's length limit,
membership, payload checks, failures and closing the case all hold. A neutral records a
live room: everybody is told before their media is recorded, newcomers included, and the
files and the timeline land in the chosen space; a party cannot start it."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import av
import pytest
import socketio
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack

from client import Participant, SocketSignal
from client.media import PatternVideoTrack
from signaling.cookies import SESSION_COOKIE
from signaling.http.state import RECORDING_NAMESPACE_KEY
from signaling.realtime.namespaces.recording import RecordingNamespace
from tests.signaling.spaces_setup import CaseSpaces, open_spaces
from tests.support.eventually import eventually
from tests.support.world import PASSWORD, World

NS = "/recording"
EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def namespace(world: World) -> RecordingNamespace:
    return world.server.app[RECORDING_NAMESPACE_KEY]


async def connect(world: World, name: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
    await sio.connect(
        world.server.url,
        headers={"Cookie": f"{SESSION_COOKIE}={world.clients[name].cookie(SESSION_COOKIE)}"},
        namespaces=[NS],
        transports=["websocket"],
        wait_timeout=10,
    )
    return sio


class VideoMessageClient:
    """Records a video message like the space page does: camera + microphone on a peer
    connection of its own, offered with ``video.start``."""

    def __init__(self, sio: socketio.AsyncClient, where: dict[str, str]) -> None:
        self.sio = sio
        self.where = where
        self.ended: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.recording_id: str | None = None
        self.reply: dict[str, Any] = {}

        @sio.on("video.ended", namespace=NS)
        async def ended(payload: dict[str, Any]) -> None:
            if not self.ended.done():
                self.ended.set_result(payload)

    async def start(self, *, video: bool = True, review: bool = False) -> dict[str, Any]:
        connected = asyncio.get_running_loop().create_future()

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState == "connected" and not connected.done():
                connected.set_result(None)

        self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        if video:
            transceiver = self.pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
            transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities("video").codecs
                    if c.mimeType in ("video/VP8", "video/rtx")
                ]
            )
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.reply = await self.sio.call(
            "video.start",
            {**self.where, "sdp": self.pc.localDescription.sdp, "review": review},
            namespace=NS,
        )
        assert self.reply["ok"], self.reply
        self.recording_id = self.reply["recording_id"]
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=self.reply["sdp"], type="answer")
        )
        async with asyncio.timeout(20):
            await connected
        return self.reply

    async def stop(self) -> dict[str, Any]:
        reply = await self.sio.call(
            "video.stop",
            {**self.where, "recording_id": self.recording_id},
            namespace=NS,
            timeout=30,
        )
        await self.pc.close()
        return reply


async def recorder_running(world: World, sid_count: int = 1) -> None:
    """Wait until the recordings in progress have muxed media (their clock started)."""
    ns = namespace(world)
    await eventually(
        lambda: (
            len(ns.videos) >= sid_count
            and all(v.recorder._muxer is not None for v in ns.videos.values())
        ),
        20,
    )


def probe(data: bytes) -> tuple[set[str], float]:
    with av.open(io.BytesIO(data)) as container:
        kinds = {s.type for s in container.streams}
        assert container.format.name.startswith("matroska")
        return kinds, container.duration / 1_000_000


@pytest.fixture
async def spaces(world: World) -> CaseSpaces:
    return await open_spaces(world)


async def test_video_message_recorded_listed_encrypted_and_playable(
    world: World, spaces: CaseSpaces
) -> None:
    where = {"case_id": spaces.case_id, "space_id": spaces.shared}
    # carl, a member of the shared space, watches it live
    spaces_socket = socketio.AsyncClient(ssl_verify=False, reconnection=False)
    live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    spaces_socket.on("message.new", live.put, namespace="/spaces")
    await spaces_socket.connect(
        world.server.url,
        headers={"Cookie": f"{SESSION_COOKIE}={world.clients['carl'].cookie(SESSION_COOKIE)}"},
        namespaces=["/spaces"],
        transports=["websocket"],
        wait_timeout=10,
    )
    assert (await spaces_socket.call("space.subscribe", where, namespace="/spaces"))["ok"]

    sio = await connect(world, "paula")
    client = VideoMessageClient(sio, where)
    reply = await client.start()
    assert reply["max_seconds"] == 600
    await recorder_running(world)
    await asyncio.sleep(3)  # the length of the message
    answer = await client.stop()
    assert answer["ok"], answer
    assert answer["status"] == "completed" and answer["reason"] == "stopped"
    assert 2.3 <= answer["duration_s"] <= 3.8, answer
    message, file = answer["message"], answer["file"]
    assert message["kind"] == "video" and message["file_id"] == file["id"]
    assert file["kind"] == "video_message" and file["content_type"] == "video/webm"
    ended = await asyncio.wait_for(client.ended, 10)
    assert ended["recording_id"] == file["id"]

    # delivered live to the other member, like any message
    async with asyncio.timeout(10):
        pushed = await live.get()
    assert pushed["id"] == message["id"] and pushed["kind"] == "video"

    # the space lists it (message and file)
    paula_http = world.clients["paula"]
    status, body, _ = await world.clients["carl"].get(spaces.path(spaces.shared, "/messages"))
    assert status == 200
    listed = next(m for m in body["messages"] if m["id"] == message["id"])
    assert listed["duration_s"] == pytest.approx(answer["duration_s"])
    status, body, _ = await paula_http.get(spaces.path(spaces.shared, "/files"))
    assert [f["id"] for f in body["files"] if f["kind"] == "video_message"] == [file["id"]]

    # on disk: encrypted, no spool left
    vault = world.server.services.vault
    blob = vault.blob_path(spaces.case_id, file["id"])
    raw = blob.read_bytes()
    assert EBML_MAGIC not in raw and b"webm" not in raw
    assert sorted(p.name for p in blob.parent.iterdir() if "spool" in p.name) == []

    # decrypted on the fly: a WebM with video and audio of about the right length
    async with world.clients["carl"].http.get(
        world.server.url + spaces.path(spaces.shared, f"/files/{file['id']}?inline=1")
    ) as response:
        assert response.headers["Content-Type"] == "video/webm"
        assert response.headers["Accept-Ranges"] == "bytes"
        data = await response.read()
    assert len(data) == file["size"]
    kinds, duration = probe(data)
    assert kinds == {"video", "audio"}
    assert duration == pytest.approx(answer["duration_s"], abs=0.3)
    async with world.clients["carl"].http.get(
        world.server.url + spaces.path(spaces.shared, f"/files/{file['id']}"),
        headers={"Range": "bytes=1000-1999"},
    ) as response:
        assert response.status == 206
        assert await response.read() == data[1000:2000]

    await sio.disconnect()
    await spaces_socket.disconnect()

    # closing the case removes the recording with every other blob
    status, body, _ = await world.clients["nina"].post(
        f"/api/cases/{spaces.case_id}/close", {"confirm_title": "Case A"}
    )
    assert status == 200, body
    assert not blob.exists() and not blob.parent.exists()


async def test_a_reviewed_video_message_is_held_then_sent_or_discarded(
    world: World, spaces: CaseSpaces
) -> None:
    """Recorded with ``review``: nothing is posted on stop; ``video.decide`` sends it (a
    message and a file) or discards it (its blob deleted); an undecided one is deleted
    when its socket goes."""
    where = {"case_id": spaces.case_id, "space_id": spaces.shared}
    vault = world.server.services.vault
    paula = world.clients["paula"]

    async def video_messages() -> list[str]:
        status, body, _ = await paula.get(spaces.path(spaces.shared, "/messages"))
        assert status == 200, body
        return [m["id"] for m in body["messages"] if m["kind"] == "video"]

    sio = await connect(world, "paula")
    takes: list[str] = []
    sent: list[str] = []
    for _ in range(3):
        client = VideoMessageClient(sio, where)
        await client.start(review=True)
        await recorder_running(world)
        answer = await client.stop()
        assert answer["ok"] and answer["status"] == "completed" and answer["held"], answer
        assert answer["message"] is None and answer["file"] is None
        assert vault.blob_path(spaces.case_id, answer["recording_id"]).exists()
        assert await video_messages() == sent  # nothing posted on stop
        takes.append(answer["recording_id"])
        if len(takes) == 1:  # discarded
            reply = await sio.call("video.decide", {**where, "send": False}, namespace=NS)
            assert reply["ok"] and reply["status"] == "discarded", reply
            assert not vault.blob_path(spaces.case_id, takes[0]).exists()
        elif len(takes) == 2:  # sent
            reply = await sio.call(
                "video.decide", {**where, "recording_id": takes[1], "send": True}, namespace=NS
            )
            assert reply["ok"] and reply["status"] == "completed", reply
            assert reply["message"]["file_id"] == takes[1] == reply["file"]["id"]
            sent.append(reply["message"]["id"])
            assert await video_messages() == sent
            # nothing more to decide on: refused
            reply = await sio.call("video.decide", {**where, "send": True}, namespace=NS)
            assert reply["ok"] is False and reply["error"]["code"] == "not_held", reply
    # the third take is left undecided: the socket goes, and it with it
    await sio.disconnect()
    await eventually(lambda: not vault.blob_path(spaces.case_id, takes[2]).exists())
    assert not namespace(world).held
    assert await video_messages() == sent


async def test_server_ends_a_video_message_at_its_maximum_length(
    world: World, spaces: CaseSpaces
) -> None:
    world.server.services.settings.video_message_max_seconds = 2
    where = {"case_id": spaces.case_id, "space_id": spaces.private}
    sio = await connect(world, "paula")
    client = VideoMessageClient(sio, where)
    reply = await client.start()
    assert reply["max_seconds"] == 2
    ended = await asyncio.wait_for(client.ended, 20)  # nobody presses stop
    assert ended["status"] == "completed" and ended["reason"] == "max-length", ended
    assert 1.7 <= ended["duration_s"] <= 2.05, ended
    async with world.clients["nina"].http.get(
        world.server.url + spaces.path(spaces.private, f"/files/{ended['file']['id']}")
    ) as response:
        _, duration = probe(await response.read())
    assert duration <= 2.05
    # stopping afterwards says there is nothing to stop
    answer = await client.stop()
    assert answer["ok"] is False and answer["error"]["code"] == "not_recording"
    assert namespace(world).videos == {}
    assert [t for t in world.server.app[RECORDING_NAMESPACE_KEY].worker.transports] == []
    await sio.disconnect()


async def test_a_failed_video_message_is_said_in_the_space(
    world: World, spaces: CaseSpaces
) -> None:
    where = {"case_id": spaces.case_id, "space_id": spaces.private}
    sio = await connect(world, "paula")
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    reply = await sio.call("video.start", {**where, "sdp": pc.localDescription.sdp}, namespace=NS)
    assert reply["ok"], reply
    await pc.close()  # the answer is never applied: no media arrives
    answer = await sio.call(
        "video.stop", {**where, "recording_id": reply["recording_id"]}, namespace=NS, timeout=30
    )
    assert answer["status"] == "failed" and answer["file"] is None
    assert answer["message"]["kind"] == "video_failed"
    assert "could not be recorded" in answer["message"]["body"]
    _, body, _ = await world.clients["nina"].get(spaces.path(spaces.private, "/messages"))
    assert [m["kind"] for m in body["messages"]] == ["video_failed"]
    assert await world.server.services.vault.blob_ids(spaces.case_id) == []
    await sio.disconnect()


async def test_only_members_record_and_payloads_are_checked(
    world: World, spaces: CaseSpaces
) -> None:
    offer = "v=0\r\n"
    private = {"case_id": spaces.case_id, "space_id": spaces.private}
    carl = await connect(world, "carl")  # in the case, not in the private space
    reply = await carl.call("video.start", {**private, "sdp": offer}, namespace=NS)
    assert reply["error"]["code"] == "not_found"
    await carl.disconnect()
    peter = await connect(world, "peter")
    reply = await peter.call("video.start", {**private, "sdp": offer}, namespace=NS)
    assert reply["error"]["code"] == "not_found"
    await peter.disconnect()

    paula = await connect(world, "paula")
    for bad in (
        private,  # no sdp
        {**private, "sdp": ""},
        {**private, "sdp": offer, "extra": 1},
        {"space_id": spaces.private, "sdp": offer},
        {**private, "sdp": 42},
    ):
        reply = await paula.call("video.start", bad, namespace=NS)
        assert reply["error"]["code"] == "invalid_payload", (bad, reply)
    reply = await paula.call("video.stop", {**private, "recording_id": ""}, namespace=NS)
    assert reply["error"]["code"] == "invalid_payload"
    reply = await paula.call("video.start", [private], namespace=NS)
    assert reply["error"]["code"] == "invalid_payload"
    reply = await paula.call("video.start", {**private, "sdp": "not an offer"}, namespace=NS)
    assert reply["error"]["code"] == "invalid_sdp"
    assert namespace(world).videos == {}
    assert await world.server.services.vault.blob_ids(spaces.case_id) == []
    await paula.disconnect()


# --- hearings -----------------------------------------------------------------------------


def signal_for(world: World, name: str) -> SocketSignal:
    return SocketSignal(world.server.url, name, PASSWORD, world.cases["Case A"], insecure=True)


class WatchedSignal(SocketSignal):
    """Notes whether the room's recording notice had arrived when it first publishes."""

    told_before_publishing: bool | None = None

    async def publish(self, offer_sdp: str) -> str:
        if self.told_before_publishing is None:
            self.told_before_publishing = told(self)
        return await super().publish(offer_sdp)


def told(signal: SocketSignal, recording: bool = True) -> bool:
    states = [p for name, p in signal.live_events if name == "recording.state"]
    return bool(states) and states[-1]["recording"] is recording


async def test_neutral_records_the_main_room(world: World, spaces: CaseSpaces) -> None:
    ns = namespace(world)
    nina_signal, paula_signal = signal_for(world, "nina"), signal_for(world, "paula")
    people = [Participant("nina", nina_signal), Participant("paula", paula_signal)]
    carl_signal = WatchedSignal(
        world.server.url, "carl", PASSWORD, world.cases["Case A"], insecure=True
    )
    carl = Participant("carl", carl_signal)
    control = await connect(world, "nina")
    paula_control = await connect(world, "paula")
    try:
        for person in people:
            await person.join()
        start = {"case_id": spaces.case_id, "space_id": spaces.shared, "room_id": "main"}
        reply = await paula_control.call("hearing.start", start, namespace=NS)
        assert reply["error"]["code"] == "forbidden"
        reply = await control.call("hearing.start", {**start, "room_id": "nowhere"}, namespace=NS)
        assert reply["error"]["code"] == "room_not_found"
        watch = await paula_control.call(
            "recording.watch", {"case_id": spaces.case_id}, namespace=NS
        )
        assert watch["recordings"] == []

        reply = await control.call("hearing.start", start, namespace=NS)
        assert reply["ok"] and reply["recording"] is True, reply
        again = await control.call("hearing.start", start, namespace=NS)
        assert again["error"]["code"] == "already_recording"
        async with asyncio.timeout(10):
            for signal in (nina_signal, paula_signal):
                await signal.wait_until(told)
        hearing = next(iter(ns.hearings.values()))
        await eventually(
            lambda: (
                len(hearing.active) == 2 and all(r.packets > 0 for r in hearing.active.values())
            ),
            20,
        )

        await carl.join()  # joins while the room is recorded
        assert carl_signal.told_before_publishing is True
        await eventually(
            lambda: (
                len(hearing.active) == 3
                and all(r._muxer is not None for r in hearing.active.values())
            ),
            20,
        )
        await asyncio.sleep(2)  # some recorded media

        stopped = await control.call(
            "hearing.stop", {"case_id": spaces.case_id, "room_id": "main"}, namespace=NS, timeout=30
        )
        assert stopped["ok"] and stopped["status"] == "completed", stopped
        async with asyncio.timeout(10):
            for signal in (nina_signal, paula_signal, carl_signal):
                await signal.wait_until(lambda s: told(s, recording=False))
        assert ns.hearings == {}
        kinds = sorted(f["kind"] for f in stopped["files"])
        assert kinds == ["hearing_recording"] * 3 + ["hearing_timeline"]

        status, body, _ = await world.clients["carl"].get(spaces.path(spaces.shared, "/files"))
        listed = {f["id"]: f for f in body["files"]}
        assert {f["id"] for f in stopped["files"]} <= set(listed)
        timeline_file = next(f for f in stopped["files"] if f["kind"] == "hearing_timeline")
        status, timeline, _ = await world.clients["nina"].get(
            spaces.path(spaces.shared, f"/files/{timeline_file['id']}")
        )
        assert status == 200
        if isinstance(timeline, str):
            timeline = json.loads(timeline)
        joined = [e["participant_id"] for e in timeline["events"] if e["event"] == "joined"]
        pids = {nina_signal.participant_id, paula_signal.participant_id}
        assert pids | {carl_signal.participant_id} == set(joined)
        for recording in (f for f in stopped["files"] if f["kind"] == "hearing_recording"):
            async with world.clients["paula"].http.get(
                world.server.url + spaces.path(spaces.shared, f"/files/{recording['id']}")
            ) as response:
                kinds_in_file, duration = probe(await response.read())
            assert kinds_in_file == {"video", "audio"} and duration > 1.0

        again = await control.call(
            "hearing.stop", {"case_id": spaces.case_id, "room_id": "main"}, namespace=NS
        )
        assert again["error"]["code"] == "not_recording"
    finally:
        for person in (*people, carl):
            await person.close()
        await control.disconnect()
        await paula_control.disconnect()
