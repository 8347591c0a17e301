"""5% loss toward a subscriber: NACKs are answered and video keeps decoding."""

import time

from tests.support.eventually import eventually
from tests.support.media import DECODING

FPS = 30
WINDOW = 3.0  # seconds of video watched under loss (about 14 lost packets)


async def test_video_survives_five_percent_loss(worker, participants):
    publisher = participants("publisher", audio=False, **DECODING)
    subscriber = participants("subscriber", audio=False, video=None, loss=0.05, decode=True)
    await publisher.join()
    await subscriber.join()
    await eventually(lambda: subscriber.frames_from_all(1, "video"), 10)

    video = next(t for t in subscriber.tracks.values() if t.kind == "video")
    start = time.monotonic()
    await eventually(lambda: time.monotonic() - start >= WINDOW, WINDOW + 5)
    decoded = video.frames_since(start)
    assert decoded > 0.5 * FPS * WINDOW, decoded

    consumer = next(
        c for t in worker.stats()["transports"] for c in t["consumers"] if c["kind"] == "video"
    )
    assert consumer["nacks_received"] > 0
    assert consumer["retransmitted"] > 0
    # de-duplication: never more retransmissions than requested sequence numbers
    assert consumer["retransmitted"] <= consumer["nack_requests"]
