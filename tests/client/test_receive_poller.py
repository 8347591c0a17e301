"""The load client's receive poller (``ReceivePoller`` with ``receive_directly``): once a
connection is up, its sockets are read by the poller's timer, and the packets of tracks
watched by a ``TrackStats`` are counted in C with the kernel's arrival times, without
loss; the peer's SRTCP is dropped with ``rtcp=False`` and reaches aiortc otherwise; what
is neither media nor RTCP still reaches aioice, and a forged RTP datagram is counted as a
failure without harming the connection; closing a connection hands its sockets back,
stops the timer when none remain, and the poller then serves new connections."""

from __future__ import annotations

import gc
import math
import os
import socket
import struct
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aioice.ice import StunProtocol
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport

from client.receive_poller import ReceivePoller
from client.track_stats import TrackStats, watch_receiver
from sfu import rtc
from sfu.rtc import native, receive
from tests.support.eventually import eventually
from tests.support.rtp_tools import nominated_local_address


@dataclass
class Pair:
    """A sender of aiortc's own audio and video tracks and a receiver read by a poller."""

    sender: RTCPeerConnection
    receiver: RTCPeerConnection
    stats: dict[str, TrackStats] = field(default_factory=dict)
    #: mids of the receiver-side ``RTCRtpReceiver._handle_rtcp_packet`` calls
    rtcp_calls: list[str] = field(default_factory=list)

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self.receiver.getTransceivers()[0].receiver.transport

    def receivers(self) -> list[Any]:
        return list(receive._direct_state(self.dtls).receivers)

    def counted(self) -> int:
        return sum(int(rx.counted) for rx in self.receivers())

    def packets(self) -> int:
        return sum(s.packets for s in self.stats.values())

    def attached(self) -> bool:
        """Connected, and every socket of the connection is in the poller's set."""
        receivers = self.receivers()
        return bool(receivers) and all(rx.registered for rx in receivers)

    def flowing(self, packets: int = 50) -> bool:
        return len(self.stats) == 2 and all(s.packets > packets for s in self.stats.values())


Connect = Callable[[ReceivePoller, bool], Awaitable[Pair]]


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


@pytest.fixture
async def poller() -> AsyncIterator[ReceivePoller]:
    poller = ReceivePoller()
    yield poller
    poller.close()


@pytest.fixture
async def pairs() -> AsyncIterator[Connect]:
    created: list[Pair] = []

    async def connect(poller: ReceivePoller, rtcp: bool) -> Pair:
        pair = Pair(_pc(), _pc())
        created.append(pair)
        pair.sender.addTrack(AudioStreamTrack())
        pair.sender.addTrack(VideoStreamTrack())
        rtc.receive_directly(pair.receiver, poller, rtcp=rtcp)

        @pair.receiver.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(
                t for t in pair.receiver.getTransceivers() if t.receiver.track is track
            )
            receiver = transceiver.receiver
            mid = str(transceiver.mid)
            stats = pair.stats[mid] = TrackStats(mid, track.kind, time.monotonic())
            watch_receiver(receiver, stats)
            handle_rtcp = receiver._handle_rtcp_packet

            async def counting(packet: Any) -> None:
                pair.rtcp_calls.append(mid)
                await handle_rtcp(packet)

            receiver._handle_rtcp_packet = counting  # type: ignore[method-assign]

        await pair.sender.setLocalDescription(await pair.sender.createOffer())
        await pair.receiver.setRemoteDescription(pair.sender.localDescription)
        await pair.receiver.setLocalDescription(await pair.receiver.createAnswer())
        await pair.sender.setRemoteDescription(pair.receiver.localDescription)
        await eventually(pair.attached, 20)
        return pair

    yield connect
    for pair in created:
        await pair.sender.close()
        await pair.receiver.close()


def _send_udp(address: tuple[str, int], *datagrams: bytes) -> None:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            sock.sendto(data, address)


async def test_both_tracks_are_counted_in_c_with_kernel_arrival_times(pairs, poller) -> None:
    pair = await pairs(poller, False)
    await eventually(pair.flowing, 20)
    assert sorted(s.kind for s in pair.stats.values()) == ["audio", "video"]
    # a track's first packet goes through Python (which routes the track to C), and so
    # may the few that arrived before the connection was handed to the poller
    assert len(pair.stats) <= pair.packets() - pair.counted() <= 10
    counted, packets, polls = pair.counted(), pair.packets(), poller.polls
    await eventually(lambda: pair.packets() > packets + 100, 10)
    assert pair.counted() - counted == pair.packets() - packets  # all of them in C
    assert poller.polls > polls and poller.datagrams >= pair.counted()
    now = time.monotonic()
    for stats in pair.stats.values():
        figures = stats.figures()
        assert figures["packets_lost"] == 0 and stats.expected == stats.packets
        assert stats.last_packet_at is not None and -0.01 < now - stats.last_packet_at < 1.0
        assert math.isfinite(stats.jitter_s) and 0 <= stats.jitter_s < 0.05
    assert rtc.direct_receive_failures(pair.receiver) == 0


@pytest.mark.parametrize("rtcp", [False, True])
async def test_rtcp_is_dropped_or_reaches_aiortc(pairs, poller, rtcp: bool) -> None:
    pair = await pairs(poller, rtcp)
    rx = pair.receivers()
    if rtcp:
        # aiortc's sender reports arrive every 0.5 to 1.5 s
        await eventually(lambda: len(pair.rtcp_calls) >= 2, 10)
        assert sum(int(r.rtcp_dropped) for r in rx) == 0
    else:
        await eventually(lambda: sum(int(r.rtcp_dropped) for r in rx) >= 3, 10)
        assert pair.rtcp_calls == []
    assert pair.flowing(10) and pair.receiver.connectionState == "connected"


async def test_other_datagrams_reach_aioice_and_forged_rtp_fails(
    pairs, poller, monkeypatch
) -> None:
    seen: list[bytes] = []
    aioice_received = StunProtocol.datagram_received

    def recording(self: StunProtocol, data: bytes, addr: tuple) -> None:
        seen.append(data)
        aioice_received(self, data, addr)

    monkeypatch.setattr(StunProtocol, "datagram_received", recording)
    pair = await pairs(poller, False)
    await eventually(pair.flowing, 20)
    assert not [d for d in seen if rtc.classify(d, len(d)) != rtc.KIND_OTHER]  # no media to aioice
    failures = rtc.direct_receive_failures(pair.receiver)
    garbage = b"\x00\x01" + os.urandom(40)
    forged = struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + os.urandom(200)
    _send_udp(nominated_local_address(pair.dtls), garbage, forged)
    await eventually(lambda: garbage in seen, 5)
    await eventually(lambda: rtc.direct_receive_failures(pair.receiver) == failures + 1, 5)
    assert forged not in seen
    counted = pair.counted()
    await eventually(lambda: pair.counted() > counted + 50, 10)
    assert pair.receiver.connectionState == "connected"


async def test_close_detaches_and_the_poller_serves_a_new_connection(pairs, poller) -> None:
    first = await pairs(poller, False)
    await eventually(first.flowing, 20)
    old = first.receivers()
    assert old and poller._timer is not None
    await first.receiver.close()
    await eventually(lambda: not any(rx.registered for rx in old), 10)
    assert poller._timer is None and poller._attached == {}
    datagrams, counted, packets = poller.datagrams, first.counted(), first.packets()
    poller.poll()  # the sender still sends, but the closed socket is not read
    assert poller.datagrams == datagrams

    second = await pairs(poller, False)
    assert poller._timer is not None
    await eventually(second.flowing, 20)
    new = second.receivers()
    assert second.counted() > 0 and all(rx.registered for rx in new)
    assert (first.counted(), first.packets()) == (counted, packets)

    poller.close()
    assert poller._poller.epfd == -1 and poller._timer is None
    assert not any(rx.registered for rx in new)
    # the sockets are asyncio's again: the event-driven path counts on
    counted = second.counted()
    await eventually(lambda: second.counted() > counted + 50, 10)
    assert second.receiver.connectionState == "connected"


async def test_the_srtp_session_is_held_while_read_and_released_with_the_transport(
    pairs, poller
) -> None:
    """The receivers point into the inbound session's ``srtp_t``: it must live as long as
    they may read, whatever else lets go of it (``dtls._rx_srtp`` is all that held it:
    once dropped, libsrtp freed the context the poller went on unprotecting with), and
    the pointers are cleared when the transport closes, before the session is let go."""
    pair = await pairs(poller, False)
    await eventually(pair.flowing, 20)
    dtls = pair.dtls
    receivers = pair.receivers()
    session = dtls._rx_srtp
    held = weakref.ref(session)
    dtls._rx_srtp = None
    del session
    gc.collect()
    assert held() is not None
    counted = pair.counted()
    await eventually(lambda: pair.counted() > counted + 50, 10)
    assert rtc.direct_receive_failures(pair.receiver) == 0
    await pair.receiver.close()
    assert all(rx.srtp == native.NATIVE.ffi.NULL for rx in receivers)
    assert not any(rx.registered for rx in receivers)
    gc.collect()
    assert held() is None


async def test_a_receiver_of_a_closed_transport_never_calls_libsrtp(pairs, poller) -> None:
    """After the transport closed, a datagram still waiting in a socket (or handed to the
    receiver) is dropped and counted: its context is gone."""
    pair = await pairs(poller, False)
    await eventually(pair.flowing, 20)
    receivers = pair.receivers()
    await pair.receiver.close()
    data = struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + os.urandom(200)
    for rx in receivers:
        assert rx.srtp == native.NATIVE.ffi.NULL
        failed = int(rx.failed)
        assert native.NATIVE.lib.caucus_receive(rx, data, len(data)) == 0
        assert rx.failed == failed + 1
