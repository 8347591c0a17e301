"""A late subscriber sees video at once: a keyframe is requested upstream for it."""

import asyncio
import time

from tests.support.eventually import eventually
from tests.support.media import DECODING


async def test_subscriber_joining_late_decodes_within_one_second(worker, participants):
    publisher = participants("publisher", **DECODING)
    await publisher.join()
    producers = lambda: [  # noqa: E731
        p for t in worker.transports for p in t.producers.values() if p.packets
    ]
    await eventually(lambda: len(producers()) == 2, 10)

    # The scenario: the subscriber arrives late, long after the publisher's first keyframe
    # (aiortc's encoder sends the next one by itself 3000 frames later) and after every
    # keyframe interval of the SFU, with no keyframe request pending.
    settings = worker.settings
    late = 2 * max(settings.subscriber_keyframe_interval, settings.keyframe_request_interval)
    started = time.monotonic()
    await eventually(
        lambda: (
            time.monotonic() - started >= late
            and all(
                p.keyframe_waiters == 0 and p._keyframe_timer is None and p._keyframe_retry is None
                for p in producers()
            )
        ),
        late + 10,
    )

    subscriber = participants("subscriber", audio=False, video=None, decode=True)
    joined = time.monotonic()
    await subscriber.join()
    await eventually(lambda: subscriber.frames_from_all(1, "video"), 5)
    video = next(t for t in subscriber.tracks.values() if t.kind == "video")
    assert video.first_frame_at - joined < 1.0
    assert any(p.keyframe_requests_sent for p in producers())


async def test_keyframe_requests_are_coalesced(worker, participants):
    publisher = participants("publisher", audio=False, **DECODING)
    await publisher.join()
    await eventually(
        lambda: any(p.packets for t in worker.transports for p in t.producers.values()), 10
    )
    producer = next(p for t in worker.transports for p in t.producers.values())
    before = producer.keyframe_requests_sent
    for _ in range(50):
        producer.request_keyframe()
    assert producer.keyframe_requests_sent == before + (1 if before == 0 else 0) or (
        producer.keyframe_requests_sent <= before + 1
    )
    # the deferred request is sent once the interval has passed, and only once
    await eventually(lambda: producer.keyframe_requests_sent >= before + 1, 2)
    sent = producer.keyframe_requests_sent
    await asyncio.sleep(0.7)  # two coalescing intervals: nothing more may be sent
    assert producer.keyframe_requests_sent <= sent + 1


class FirstKeyframeRequestIgnored:
    """A producer's RTCP writer whose first keyframe request goes nowhere, as when the
    publisher ignores it (WebRTC senders drop requests within 300 ms of the last one they
    honoured) or the datagram is lost."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.ignored = 0

    def write_rtcp(self, data: bytes) -> bool:
        if not self.ignored and data[1] == 206 and data[0] & 0x1F == 1:  # PSFB, PLI
            self.ignored += 1
            return True
        return self.writer.write_rtcp(data)


async def test_keyframe_is_requested_again_while_a_subscriber_waits(worker, participants):
    publisher = participants("publisher", audio=False, **DECODING)
    await publisher.join()
    await eventually(
        lambda: any(p.packets for t in worker.transports for p in t.producers.values()), 10
    )
    producer = next(p for t in worker.transports for p in t.producers.values())
    await asyncio.sleep(1.0)  # the publisher's first keyframe and request are over
    await eventually(lambda: producer._keyframe_timer is None, 2)
    ignoring = producer._writer = FirstKeyframeRequestIgnored(producer._writer)

    subscriber = participants("subscriber", audio=False, video=None, decode=True)
    await subscriber.join()
    # the publisher sends no keyframe by itself for minutes: only a second request helps
    await eventually(lambda: subscriber.frames_from_all(1, "video"), 5)
    assert ignoring.ignored == 1
