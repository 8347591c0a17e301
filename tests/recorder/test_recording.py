"""End to end: a headless participant publishes through the SFU into a recording."""

import asyncio
import gc
import sys
import time

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
import av.codec
import av.codec.context
import pytest

from recorder import COMPLETED, Recorder
from sfu import rtc
from tests.support.eventually import eventually

from .conftest import CASE, decode, files_under, published
from .pattern import FPS, expected_colour

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
COLOUR_TOLERANCE = 12.0


@pytest.fixture
def codec_calls(monkeypatch):
    """Record every decoder/encoder aiortc creates (with its owner) and every
    ``av.CodecContext.create``."""
    calls = {"decoders": [], "encoders": [], "codec_contexts": []}
    get_decoder = aiortc.rtcrtpreceiver.get_decoder
    get_encoder = aiortc.rtcrtpsender.get_encoder

    def recording_decoder(codec):
        calls["decoders"].append(codec.mimeType)
        return get_decoder(codec)

    def recording_encoder(codec):
        calls["encoders"].append((codec.mimeType, sys._getframe(1).f_locals.get("self")))
        return get_encoder(codec)

    real = av.codec.context.CodecContext

    class CountingCodecContext:
        @staticmethod
        def create(*args, **kwargs):
            context = real.create(*args, **kwargs)
            caller = sys._getframe(1).f_globals.get("__name__", "")
            calls["codec_contexts"].append((args, caller, context))
            return context

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", recording_decoder)
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", recording_encoder)
    # the Python-level names: av.CodecContext, av.codec.CodecContext, and the modules
    # that imported it (aiortc.codecs.*, the recorder); PyAV's own compiled modules
    # look the type up internally and are left alone
    for name, module in list(sys.modules.items()):
        if name in ("av", "av.codec") or name.startswith(("aiortc", "recorder", "client")):
            if getattr(module, "CodecContext", None) is real:
                monkeypatch.setattr(module, "CodecContext", CountingCodecContext)
    return calls


def live_codec_contexts() -> list:
    return [o for o in gc.get_objects() if isinstance(o, av.codec.context.CodecContext)]


def check_pattern(decoded, *, min_frames: int) -> None:
    """Every decoded frame shows the colour and counter that were sent at its time."""
    assert len(decoded.video) >= min_frames, len(decoded.video)
    first_pts, first_counter, _ = decoded.video[0]
    previous = -1
    for pts, counter, colour in decoded.video:
        assert counter > previous, (pts, counter, previous)
        previous = counter
        expected = expected_colour(counter)
        assert all(abs(c - e) <= COLOUR_TOLERANCE for c, e in zip(colour, expected, strict=True)), (
            counter,
            colour,
            expected,
        )
        # the container's timestamps are the sender's: frame n is n / FPS seconds later
        assert abs((pts - first_pts) - (counter - first_counter) / FPS) < 0.01, (pts, counter)


async def test_ten_seconds_of_pattern_recorded_encrypted_without_coding(
    worker, participants, vault, case_key, codec_calls
):
    # codec contexts an earlier test in this process left alive (a video check's decoders)
    # are not the recorder's: only the ones that appear from here on count
    gc.collect()
    earlier = live_codec_contexts()
    publisher = participants("alice")
    await publisher.join()
    producers = await published(worker, "alice")

    recorder = Recorder(vault, CASE, case_key, "message-1")
    await recorder.start()
    for producer in producers:
        recorder.attach(producer)
    await asyncio.sleep(10)  # the scenario: ten seconds of publishing

    # While recording, the only codec contexts in the process that are open, or are
    # video ones, belong to the publisher's own encoders (aiortc's VP8 encoder makes
    # them with av.CodecContext.create); the recorder's are unopened audio parameters.
    publisher_contexts = {id(context) for _, _, context in codec_calls["codec_contexts"]}
    assert all(caller.startswith("aiortc.codecs") for _, caller, _ in codec_calls["codec_contexts"])
    before = {id(c) for c in earlier}
    others = [
        c for c in live_codec_contexts() if id(c) not in publisher_contexts and id(c) not in before
    ]
    assert not [c for c in others if c.is_open], others
    assert not [c for c in others if c.type == "video"], others
    result = await recorder.stop()

    assert result.status == COMPLETED, result
    assert result.reason == "stopped"
    assert result.has_video and result.has_audio
    assert abs(result.duration_s - 10) <= 0.5, result
    assert recorder.packets > 0

    # no decoder or encoder was created in this process except the publisher's own
    publisher_senders = {t.sender for t in publisher._publish_pc.getTransceivers()}
    assert codec_calls["decoders"] == []
    assert all(owner in publisher_senders for _, owner in codec_calls["encoders"])
    assert len(codec_calls["encoders"]) == 2

    # at rest: encrypted, nothing that looks like WebM, no spool left behind
    stored = files_under(vault.root)
    assert len(stored) == 1
    for data in stored:
        assert EBML_MAGIC not in data
        assert b"webm" not in data.lower()
    assert await vault.blob_ids(CASE) == ["message-1"]

    data = await vault.read_bytes(CASE, case_key, "message-1")
    assert data.startswith(EBML_MAGIC) and b"webm" in data[:64]
    assert len(data) == result.size
    decoded = decode(data)
    assert decoded.video_streams == 1 and decoded.audio_streams == 1
    assert sorted(decoded.codecs) == ["opus", "vp8"]
    assert abs(decoded.duration - 10) <= 0.5, decoded.duration
    assert decoded.errors == []
    assert abs(decoded.audio_seconds - 10) <= 0.5, decoded.audio_seconds
    check_pattern(decoded, min_frames=int(9 * FPS))


async def test_five_percent_loss_toward_the_sfu_still_decodes(
    worker, participants, vault, case_key
):
    publisher = participants("alice")
    await publisher.join()
    producers = await published(worker, "alice")
    # drop 5% of the media datagrams the SFU receives from the publisher
    rng = __import__("random").Random(7)
    transport = next(worker.transports_of("alice", "publish"))
    dtls = transport._pc.getTransceivers()[0].receiver.transport
    rtc.drop_incoming_rtp(dtls, lambda: rng.random() < 0.05)

    recorder = Recorder(vault, CASE, case_key, "lossy")
    await recorder.start()
    for producer in producers:
        recorder.attach(producer)
    video = next(p for p in producers if p.kind == "video")
    start = time.monotonic()
    await eventually(lambda: time.monotonic() - start > 6 and video.nacks_sent > 0, 20)
    result = await recorder.stop()
    assert result.status == COMPLETED, result

    decoded = decode(await vault.read_bytes(CASE, case_key, "lossy"))
    assert decoded.errors == []
    assert decoded.video_streams == 1 and decoded.audio_streams == 1
    check_pattern(decoded, min_frames=3 * FPS)


async def test_publisher_leaving_mid_recording_leaves_a_playable_file(
    worker, participants, vault, case_key
):
    publisher = participants("alice")
    await publisher.join()
    producers = await published(worker, "alice")
    recorder = Recorder(vault, CASE, case_key, "left")
    await recorder.start()
    for producer in producers:
        recorder.attach(producer)
    video = next(p for p in producers if p.kind == "video")
    await eventually(lambda: recorder.packets > 0 and video.packets > 3 * FPS, 10)
    await publisher.close()

    async with asyncio.timeout(10):
        result = await recorder.wait()
    assert result.status == COMPLETED, result
    assert result.reason == "publisher-left"
    assert result.has_video and result.has_audio
    decoded = decode(await vault.read_bytes(CASE, case_key, "left"))
    assert decoded.errors == []
    assert decoded.duration > 2
    check_pattern(decoded, min_frames=2 * FPS)
