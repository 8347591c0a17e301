"""Three participants in one router: everyone decodes everyone else; the SFU never codes."""

import sys

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest

from sfu.settings import AES128_SRTP_PROFILES
from tests.support.eventually import eventually
from tests.support.media import DECODING


@pytest.fixture
def codec_factory_calls(monkeypatch):
    """Record who creates decoders and encoders: the receiver's track queue / the sender."""
    calls = {"decoders": [], "encoders": []}
    get_decoder = aiortc.rtcrtpreceiver.get_decoder
    get_encoder = aiortc.rtcrtpsender.get_encoder

    def recording_decoder(codec):
        calls["decoders"].append((codec.mimeType, sys._getframe(1).f_locals.get("output_q")))
        return get_decoder(codec)

    def recording_encoder(codec):
        calls["encoders"].append((codec.mimeType, sys._getframe(1).f_locals.get("self")))
        return get_encoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", recording_decoder)
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", recording_encoder)
    return calls


async def test_three_participants_receive_each_other_without_sfu_coding(
    worker, participants, codec_factory_calls
):

    clients = [participants(name, **DECODING) for name in ("alice", "bob", "carol")]
    for client in clients:
        await client.join()

    await eventually(
        lambda: all(
            c.frames_from_all(2, "video") and c.frames_from_all(2, "audio") for c in clients
        ),
        20,
    )
    for client in clients:
        assert sorted(t.kind for t in client.tracks.values()) == [
            "audio",
            "audio",
            "video",
            "video",
        ]

    # server side: producers and consumers exist and packets were forwarded
    stats = worker.stats()
    server_receivers = []
    server_senders = []
    for transport in worker.transports:
        for consumer in transport.consumers.values():
            server_senders.append(consumer.transceiver.sender)
        for transceiver in transport._pc.getTransceivers():
            server_receivers.append(transceiver.receiver.track)
    consumers = [c for t in stats["transports"] for c in t["consumers"]]
    assert len(consumers) == 12
    assert all(c["packets_forwarded"] > 0 for c in consumers)

    # no decoder or encoder was ever created for a server-side receiver or sender
    server_queues = {id(track._queue) for track in server_receivers if track is not None}
    assert codec_factory_calls["decoders"], "clients decode: the recorder must see them"
    assert not [m for m, q in codec_factory_calls["decoders"] if id(q) in server_queues]
    assert not [m for m, s in codec_factory_calls["encoders"] if s in server_senders]
    # clients: 4 received tracks each, 2 published tracks each
    assert len(codec_factory_calls["decoders"]) == 12
    assert len(codec_factory_calls["encoders"]) == 6


async def test_srtp_profile_is_aes_128(worker, participants):

    a, b = participants("a", **DECODING), participants("b", **DECODING)
    await a.join()
    await b.join()
    await eventually(lambda: a.frames_from_all(1, "video") and b.frames_from_all(1, "video"), 15)
    profiles = {t["direction"]: t["srtp_profile"] for t in worker.stats()["transports"]}
    assert profiles
    for profile in profiles.values():
        assert profile in AES128_SRTP_PROFILES
        assert "128" in profile


async def test_srtp_profile_follows_settings(participants):
    from client import LocalSignal, Participant
    from sfu import MediaSettings, Worker

    worker = Worker(MediaSettings(srtp_profiles=("SRTP_AES128_CM_SHA1_80",)))
    a = Participant("a", LocalSignal(worker, "r"), video=None)
    b = Participant("b", LocalSignal(worker, "r"), video=None)
    try:
        await a.join()
        await b.join()
        await eventually(lambda: a.frames_from_all(1) and b.frames_from_all(1), 15)
        for transport in worker.stats()["transports"]:
            assert transport["srtp_profile"] == "SRTP_AES128_CM_SHA1_80"
    finally:
        await a.close()
        await b.close()
        await worker.close()


@pytest.mark.room_video_codecs("video/VP8", "video/H264")
async def test_h264_is_forwarded_where_rooms_allow_it(worker, participants):

    a = participants("a", audio=False, video="pattern", video_codec="video/H264")
    b = participants("b", audio=False, video=None, decode=True)
    await a.join()
    await b.join()
    await eventually(lambda: b.frames_from_all(1, "video"), 15)
    producers = [p for t in worker.stats()["transports"] for p in t["producers"]]
    assert [p["codec"] for p in producers] == ["video/H264"]
