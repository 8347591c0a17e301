"""Live media over socket.io against the real server: three headless participants in one
case's room receive each other, and bad input gives clear errors and leaks nothing."""

from __future__ import annotations

import asyncio
import re

import pytest
import socketio
from aiortc import RTCPeerConnection, RTCRtpSender

from client import Participant, SignalError, SocketSignal
from client.media import PatternVideoTrack
from signaling.cluster.media_host import media_settings, parse_ice_server
from signaling.cookies import SESSION_COOKIE
from signaling.http.state import MEDIA_WORKER, NAMESPACES
from signaling.realtime.ice_servers import browser_ice_servers
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.settings import Settings
from tests.support.eventually import eventually
from tests.support.media import participant
from tests.support.world import PASSWORD, World


def signal_for(world: World, name: str, case: str = "Case A") -> SocketSignal:
    return SocketSignal(world.server.url, name, PASSWORD, world.cases[case], insecure=True)


def media_namespace(world: World) -> MediaNamespace:
    return next(n for n in world.server.app[NAMESPACES] if isinstance(n, MediaNamespace))


async def publish_offer(codec: str = "video/VP8") -> str:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
    real = codec if codec in ("video/VP8", "video/H264") else "video/VP8"
    chosen = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == real]
    transceiver.setCodecPreferences(chosen)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    if codec != real:
        sdp = re.sub(r"VP8/90000", codec.split("/")[1] + "/90000", sdp)
    return sdp


async def test_three_participants_receive_each_other(world: World) -> None:
    names = ("nina", "paula", "carl")
    people = [Participant(name, signal_for(world, name)) for name in names]
    try:
        for person in people:
            await person.join()
        async with asyncio.timeout(60):
            for person in people:
                await person.wait_until(
                    lambda p: p.frames_from_all(2, "video") and p.frames_from_all(2, "audio")
                )
        for person in people:
            signal = person.signal
            assert isinstance(signal, SocketSignal)
            others = {s.signal.participant_id for s in people if s is not person}
            # every received track is labelled with its sender, and it is one of the others
            by_owner: dict[str, set[str]] = {}
            for mid, track in person.tracks.items():
                label = signal.tracks[mid]
                assert label["kind"] == track.kind
                by_owner.setdefault(label["participant_id"], set()).add(track.kind)
            assert set(by_owner) == others
            assert all(kinds == {"audio", "video"} for kinds in by_owner.values())
            assert len(signal.participants) == 3
        stats = media_namespace(world).stats()
        profiles = {t["srtp_profile"] for t in stats["transports"]}
        assert profiles <= {"SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"}, profiles
        # the headless participants reach the SFU directly: host candidates on both ends
        pairs = [t["ice"] for t in stats["transports"] if t["state"] == "connected"]
        assert pairs and all(
            p == {"local_type": "host", "remote_type": "host", "protocol": "udp"} for p in pairs
        ), pairs

        # one leaves: the others' tracks and participant lists drop it
        gone = people.pop()
        gone_id = gone.signal.participant_id
        await gone.close()
        async with asyncio.timeout(15):
            for person in people:
                await person.signal.wait_until(
                    lambda s: (
                        len(s.participants) == 2
                        and all(t["participant_id"] != gone_id for t in s.tracks.values())
                    )
                )
    finally:
        for person in people:
            await person.close()
    worker = world.server.app[MEDIA_WORKER]
    await eventually(lambda: not worker.transports, 10)
    assert media_namespace(world).live == {}


async def connect(world: World, name: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
    await sio.connect(
        world.server.url,
        headers={"Cookie": f"{SESSION_COOKIE}={world.clients[name].cookie(SESSION_COOKIE)}"},
        namespaces=["/media"],
        transports=["websocket"],
        wait_timeout=10,
    )
    return sio


async def test_bad_input_gives_clear_errors_and_leaks_nothing(world: World) -> None:
    worker = world.server.app[MEDIA_WORKER]
    case_a, case_b = world.cases["Case A"], world.cases["Case B"]
    sio = await connect(world, "paula")

    async def call(event: str, payload: object) -> dict:
        return await sio.call(event, payload, namespace="/media", timeout=15)

    try:
        reply = await call("media.publish", {"case_id": case_a, "sdp": "v=0"})
        assert reply["error"]["code"] == "not_joined", reply
        reply = await call("media.join", {"case_id": case_b})
        assert reply["ok"] is False and reply["error"]["code"] in ("not_found", "forbidden")
        assert not worker.transports

        reply = await call("media.join", {"case_id": case_a})
        assert reply["ok"] is True, reply
        transports = len(worker.transports)
        tasks = len(asyncio.all_tasks())

        reply = await call("media.join", {"case_id": case_a})
        assert reply["error"]["code"] == "already_joined", reply
        reply = await call("media.publish", {"case_id": case_b, "sdp": "v=0"})
        assert reply["ok"] is False and reply["error"]["code"] in ("not_found", "forbidden")

        bad_offers = [
            ("this is not SDP", "invalid_sdp"),
            ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\n", "invalid_sdp"),
            (await publish_offer("video/VP9"), "no_supported_codec"),
            # a live room's video is VP8 (everyone decodes it): H.264 alone is refused
            (await publish_offer("video/H264"), "no_supported_codec"),
        ]
        for sdp, code in bad_offers:
            reply = await call("media.publish", {"case_id": case_a, "sdp": sdp})
            assert reply["ok"] is False, reply
            assert reply["error"]["code"] == code, reply
            if "H264/90000" in sdp:
                assert "this room's video is video/VP8" in reply["error"]["message"], reply
            assert "Traceback" not in reply["error"]["message"]
            await eventually(lambda: len(worker.transports) == transports, 5)
            await eventually(lambda: len(asyncio.all_tasks()) <= tasks, 5)

        for payload in ({"case_id": case_a}, {"case_id": case_a, "sdp": ""}, "x"):
            reply = await call("media.publish", payload)
            assert reply["error"]["code"] == "invalid_payload", reply

        reply = await call("media.leave", {"case_id": case_a})
        assert reply["ok"] is True, reply
        await eventually(lambda: not worker.transports, 5)
        reply = await call("media.leave", {"case_id": case_a})
        assert reply["error"]["code"] == "not_joined", reply

        # joining again after leaving works; disconnecting is leaving
        reply = await call("media.join", {"case_id": case_a})
        assert reply["ok"] is True, reply
        await sio.disconnect()
        await eventually(lambda: not worker.transports and not media_namespace(world).live, 5)
    finally:
        await sio.disconnect()


async def test_socket_signal_refusals(world: World) -> None:
    outsider = signal_for(world, "peter")  # a party of Case B
    with pytest.raises(SignalError) as info:
        await outsider.connect("peter", lambda offer: offer)  # type: ignore[arg-type,return-value]
    assert info.value.code in ("not_found", "forbidden")
    await outsider.close()
    wrong = SocketSignal(
        world.server.url, "paula", "wrong password 99", world.cases["Case A"], insecure=True
    )
    with pytest.raises(SignalError) as info:
        await wrong.sign_in()
    assert info.value.code == "invalid_credentials"


def test_media_settings_from_server_settings(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        rtc_port_min=40000,
        rtc_port_max=40100,
        rtc_announced_ip="203.0.113.7",
        rtc_ice_servers=[
            "stun:stun.example.org:3478",
            "turn:al%40ice:s3cret@turn.example.org:3478?transport=udp",
        ],
        srtp_profiles=["SRTP_AES128_CM_SHA1_80"],
    )
    media = media_settings(settings)
    assert (media.udp_port_min, media.udp_port_max) == (40000, 40100)
    assert media.announced_ip == "203.0.113.7"
    assert media.srtp_profiles == ("SRTP_AES128_CM_SHA1_80",)
    assert media.room_video_codecs == ("video/VP8",)
    both = Settings(data_dir=tmp_path, rtc_room_video_codecs=["video/VP8", "video/H264"])
    assert media_settings(both).room_video_codecs == ("video/VP8", "video/H264")
    with pytest.raises(ValueError):
        media_settings(Settings(data_dir=tmp_path, rtc_room_video_codecs=["video/VP9"]))
    assert browser_ice_servers(media) == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp"],
            "username": "al@ice",
            "credential": "s3cret",
        },
    ]
    defaults = media_settings(Settings(data_dir=tmp_path))
    assert defaults.udp_port_min is None and defaults.ice_servers == ()
    with pytest.raises(ValueError):
        parse_ice_server("http://example.org")


async def test_a_bad_subscribe_answer_ends_the_session_cleanly(world: World) -> None:
    worker = world.server.app[MEDIA_WORKER]
    namespace = media_namespace(world)
    publisher = Participant("paula", signal_for(world, "paula"))
    sio = await connect(world, "carl")
    ended = asyncio.Event()
    offers: list[dict] = []

    async def bad_answer(payload: dict) -> dict:
        offers.append(payload)
        return {"sdp": "not an answer"}

    sio.on("media.offer", bad_answer, namespace="/media")
    sio.on("media.ended", lambda payload: ended.set(), namespace="/media")
    try:
        await publisher.join()
        reply = await sio.call(
            "media.join", {"case_id": world.cases["Case A"]}, namespace="/media", timeout=15
        )
        assert reply["ok"] is True, reply
        carl = reply["participant_id"]
        await asyncio.wait_for(ended.wait(), 15)
        assert offers and {t["display_name"] for t in offers[0]["tracks"]} == {"party person"}
        await eventually(lambda: not list(worker.transports_of(carl)), 5)
        assert all(s.participant_id != carl for s in namespace.live.values())
        # the socket may join again
        reply = await sio.call(
            "media.join", {"case_id": world.cases["Case A"]}, namespace="/media", timeout=15
        )
        assert reply["ok"] is True, reply
    finally:
        await sio.disconnect()
        await publisher.close()
    await eventually(lambda: not worker.transports and not namespace.live, 10)


def socket_signal(person: Participant) -> SocketSignal:
    signal = person.signal
    assert isinstance(signal, SocketSignal)
    return signal


def participant_id(person: Participant) -> str:
    found = socket_signal(person).participant_id
    assert found is not None
    return found


def speaker_events(person: Participant) -> list[dict]:
    told = socket_signal(person).live_events
    return [payload for name, payload in told if name == "media.speaker"]


def latest_quality(person: Participant) -> dict | None:
    told = [p for name, p in socket_signal(person).live_events if name == "media.quality"]
    return told[-1] if told else None


async def test_the_room_is_told_its_active_speaker_and_everyones_connection(
    world: World,
) -> None:
    """nina publishes a tone, paula and carl silence (and a video clip): everyone in the
    room is told that nina speaks, and how well each connection carries the call; a
    socket joining later learns the speaker in its join reply."""
    talker = participant("nina", signal_for(world, "nina"), audio="tone", video=None)
    quiet = [participant(name, signal_for(world, name)) for name in ("paula", "carl")]
    people = [talker, *quiet]
    late = await connect(world, "paula")
    try:
        for person in people:
            await person.join()
        nina = participant_id(talker)
        await eventually(
            lambda: all(
                any(e["participant_id"] == nina for e in speaker_events(p)) for p in people
            ),
            20,
        )
        for person in people:
            seqs = [e["seq"] for e in speaker_events(person)]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert (
            media_namespace(world).worker.active_speaker(
                media_namespace(world).by_participant[nina].room_id
            )
            == nina
        )

        # the quiet ones publish video: the SFU counts what reaches it and finds no loss
        publishers = {participant_id(p) for p in quiet}

        def told_everyone() -> bool:
            for person in people:
                quality = latest_quality(person)
                if quality is None or not publishers <= set(quality["participants"]):
                    return False
            return True

        await eventually(told_everyone, 20)
        for person in people:
            quality = latest_quality(person)
            assert quality is not None
            assert quality["paused"] == []
            for pid in publishers:
                entry = quality["participants"][pid]
                assert entry["level"] in ("good", "fair", "poor"), entry
                assert set(entry) == {"level", "loss_pct", "rtt_ms"}

        # the SFU withholds carl's video from paula (her link cannot carry it): she is told
        # which video, and her own connection is poor
        worker = world.server.app[MEDIA_WORKER]
        paula, carl = (participant_id(p) for p in quiet)
        withheld = next(
            c
            for t in worker.transports_of(paula)
            for c in t.consumers.values()
            if c.kind == "video" and c.producer is not None and c.producer.participant_id == carl
        )
        withheld.paused_for_bandwidth = True
        await eventually(lambda: (latest_quality(quiet[0]) or {}).get("paused"), 10)
        told = latest_quality(quiet[0])
        assert told is not None and told["paused"] == [withheld.producer_id], told
        assert told["participants"][paula]["level"] == "poor", told
        withheld.paused_for_bandwidth = False
        await eventually(lambda: (latest_quality(quiet[0]) or {}).get("paused") == [], 10)

        # a socket joining now is told the speaker with the room's people
        reply = await late.call(
            "media.join", {"case_id": world.cases["Case A"]}, namespace="/media", timeout=15
        )
        assert reply["ok"] is True, reply
        assert reply["speaker"] == nina and reply["speaker_seq"] >= 1, reply
    finally:
        await late.disconnect()
        for person in people:
            await person.close()


async def test_tile_heights_are_checked_and_reach_the_sfu(world: World) -> None:
    """``media.tiles`` from a hostile page: every malformed payload is refused with a
    clear error and changes nothing; only videos the caller receives may be named."""
    worker = world.server.app[MEDIA_WORKER]
    publisher = participant("paula", signal_for(world, "paula"))
    viewer = participant("carl", signal_for(world, "carl"), audio=False, video=None)
    case_a = world.cases["Case A"]
    outsider = await connect(world, "nina")
    try:
        # not joined: refused before anything else
        reply = await outsider.call(
            "media.tiles", {"case_id": case_a, "tiles": []}, namespace="/media", timeout=15
        )
        assert reply["error"]["code"] == "not_joined", reply

        await publisher.join()
        await viewer.join()
        signal = viewer.signal
        assert isinstance(signal, SocketSignal)
        await asyncio.wait_for(
            signal.wait_until(
                lambda s: {t["kind"] for t in s.tracks.values()} == {"audio", "video"}
            ),
            20,
        )
        video = next(t["producer_id"] for t in signal.tracks.values() if t["kind"] == "video")
        audio = next(t["producer_id"] for t in signal.tracks.values() if t["kind"] == "audio")
        consumer = next(
            c
            for t in worker.transports_of(participant_id(viewer))
            for c in t.consumers.values()
            if c.producer_id == video
        )

        async def tiles(payload: object) -> dict:
            try:
                return await signal.call("media.tiles", payload)  # type: ignore[arg-type]
            except SignalError as error:
                return {"ok": False, "error": {"code": error.code, "message": str(error)}}

        def tile(producer: object = video, height: object = 180) -> dict:
            return {"producer_id": producer, "height": height}

        bad = [
            "tiles",
            {"case_id": case_a},
            {"case_id": case_a, "tiles": "all"},
            {"case_id": case_a, "tiles": [tile()], "extra": 1},
            {"case_id": case_a, "tiles": [tile(height="180")]},
            {"case_id": case_a, "tiles": [tile(height=180.5)]},
            {"case_id": case_a, "tiles": [tile(height=True)]},
            {"case_id": case_a, "tiles": [tile(height=-1)]},
            {"case_id": case_a, "tiles": [tile(height=100_000)]},
            {"case_id": case_a, "tiles": [{"producer_id": video}]},
            {"case_id": case_a, "tiles": [{**tile(), "width": 320}]},
            {"case_id": case_a, "tiles": [tile(producer=7)]},
            {"case_id": case_a, "tiles": [tile(producer="")]},
            {"case_id": case_a, "tiles": [tile(producer="../../etc")]},
            {"case_id": case_a, "tiles": [tile(producer="a" * 65)]},
            {"case_id": case_a, "tiles": [tile(), tile()]},
            {"case_id": case_a, "tiles": [tile(producer=f"{n:032x}") for n in range(65)]},
        ]
        for payload in bad:
            reply = await tiles(payload)
            assert reply["ok"] is False, payload
            assert reply["error"]["code"] == "invalid_payload", (payload, reply)
            assert consumer.tile_height is None
        # well formed, but not a video this person receives
        for producer in ("0" * 32, audio):
            reply = await tiles({"case_id": case_a, "tiles": [tile(producer=producer)]})
            assert reply["error"]["code"] == "unknown_producer", reply
            assert "do not receive" in reply["error"]["message"]
        # another case's id: refused by membership, not by the tiles
        reply = await tiles({"case_id": world.cases["Case B"], "tiles": [tile()]})
        assert reply["error"]["code"] in ("not_found", "forbidden"), reply
        assert consumer.tile_height is None

        reply = await tiles({"case_id": case_a, "tiles": [tile(height=180)]})
        assert reply == {"ok": True, "applied": 1}, reply
        assert consumer.tile_height == 180
        reply = await tiles({"case_id": case_a, "tiles": [tile(height=None)]})
        assert reply["ok"] is True and consumer.tile_height is None
        await tiles({"case_id": case_a, "tiles": [tile(height=720)]})
        assert consumer.tile_height == 720
        # a video left out is not shown
        reply = await tiles({"case_id": case_a, "tiles": []})
        assert reply == {"ok": True, "applied": 1} and consumer.tile_height is None
    finally:
        await outsider.disconnect()
        await viewer.close()
        await publisher.close()
