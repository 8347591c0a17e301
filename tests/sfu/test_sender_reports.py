"""A subscribe transport sends its consumers' RTCP sender reports together: one compound
packet per interval (RFC 8108 §5.3), split only when it would outgrow
``MAX_RTCP_COMPOUND``; aiortc peers read every report in it and answer each, so the round
trip of every stream is still measured.  A publish transport sends its producers'
receiver reports and REMB together the same way."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket

from sfu import Worker
from sfu.transport import MAX_RTCP_COMPOUND, PUBLISH, SUBSCRIBE
from tests.support.eventually import eventually


class Recording:
    """Stands for a transport's writer: records what it is given to send and sends it."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.sent: list[bytes] = []

    def write_rtcp(self, data: bytes) -> bool:
        self.sent.append(data)
        return self.writer.write_rtcp(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.writer, name)


def recording(transport: Any) -> list[bytes]:
    """Record the RTCP ``transport`` sends from now on (its writer, wrapped)."""
    assert transport._writer is not None
    transport._writer = Recording(transport._writer)
    return transport._writer.sent


async def test_a_subscriber_gets_one_compound_report_for_its_streams_and_answers_each(
    worker: Worker, participants
) -> None:
    publishers = [participants(name) for name in ("alice", "bob")]  # audio and video each
    viewer = participants("viewer", audio=False, video=None, decode=True)
    for person in (*publishers, viewer):
        await person.join()
    (transport,) = worker.transports_of("viewer", SUBSCRIBE)

    def flowing() -> bool:
        consumers = transport.consumers.values()
        return len(consumers) == 4 and all(c.started and c.packets for c in consumers)

    await eventually(flowing, 20, what="four streams forwarded to the viewer")
    sent = recording(transport)
    assert transport.send_sender_reports(time.time()) == 1
    (datagram,) = sent
    reports = RtcpPacket.parse(datagram)
    assert all(isinstance(report, RtcpSrPacket) for report in reports)
    ssrcs = {consumer._ssrc for consumer in transport.consumers.values()}
    assert {report.ssrc for report in reports} == ssrcs and len(reports) == 4
    # the worker's RTCP rounds (every second) send them that way too, and the viewer's
    # receiver reports answer every sender report in them: each stream's round trip is
    # measured
    consumers = list(transport.consumers.values())
    await eventually(
        lambda: all(c.rtt is not None for c in consumers) and len(sent) >= 3,
        20,
        what="every stream's round trip measured from the compound reports",
    )
    assert all(0 <= c.rtt < 1 for c in consumers), [c.rtt for c in consumers]
    rounds = [RtcpPacket.parse(datagram) for datagram in sent]
    assert all({r.ssrc for r in reports} == ssrcs for reports in rounds), rounds


async def test_a_publisher_gets_its_receiver_reports_and_remb_in_one_packet(
    worker: Worker, participants
) -> None:
    publisher = participants("publisher")  # audio and video
    viewer = participants("viewer", audio=False, video=None)
    for person in (publisher, viewer):
        await person.join()
    (transport,) = worker.transports_of("publisher", PUBLISH)
    await eventually(
        lambda: (
            len(transport.producers) == 2 and all(p.packets for p in transport.producers.values())
        ),
        20,
        what="audio and video arriving",
    )
    sent = recording(transport)
    assert transport.send_receiver_reports() == 1
    packets = RtcpPacket.parse(sent[0])
    reports = [p for p in packets if isinstance(p, RtcpRrPacket)]
    assert {r.reports[0].ssrc for r in reports} == {p.ssrc for p in transport.producers.values()}
    assert [type(p) for p in packets].count(RtcpPsfbPacket) == 1  # the video's REMB
    # the worker's rounds send them that way too
    await eventually(lambda: len(sent) >= 3, 10, what="the worker's RTCP rounds")
    assert all(len(RtcpPacket.parse(datagram)) == 3 for datagram in sent)


async def test_reports_that_outgrow_one_packet_go_in_as_few_as_fit(worker: Worker) -> None:
    transport = await worker.create_transport("many", SUBSCRIBE)
    try:
        sent: list[bytes] = []
        transport._writer = SimpleNamespace(write_rtcp=lambda data: sent.append(data) or True)
        report = bytes(RtcpSrPacket(ssrc=1, sender_info=_info()))
        assert len(report) == 28
        transport.consumers = {
            str(i): SimpleNamespace(sender_report=lambda now, r=report: r) for i in range(50)
        }
        transport.consumers["quiet"] = SimpleNamespace(sender_report=lambda now: None)
        assert transport.send_sender_reports(time.time()) == 2
        fit = MAX_RTCP_COMPOUND // 28
        assert [len(datagram) for datagram in sent] == [fit * 28, (50 - fit) * 28]
        assert all(len(RtcpPacket.parse(datagram)) * 28 == len(datagram) for datagram in sent)
        sent.clear()
        transport.consumers = {"quiet": SimpleNamespace(sender_report=lambda now: None)}
        assert transport.send_sender_reports(time.time()) == 0 and sent == []

        # one report that fails is left out, logged once, and the others still go
        def broken(now: float) -> bytes:
            raise OverflowError("a clock past the end of NTP time")

        transport.consumers = {
            "a": SimpleNamespace(sender_report=lambda now: report),
            "broken": SimpleNamespace(sender_report=broken),
            "b": SimpleNamespace(sender_report=lambda now: report),
        }
        lines = transport.ingress.log.lines
        for _ in range(3):
            assert transport.send_sender_reports(time.time()) == 1
        assert sent == [report * 2] * 3
        assert transport.ingress.log.lines == lines + 1
    finally:
        transport.consumers = {}
        await transport.close()


def _info() -> Any:
    from aiortc.rtp import RtcpSenderInfo

    return RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4)
