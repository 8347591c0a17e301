"""The SSRC allowlist of the direct receive path (``rtc.set_ssrc_policy``)
against SSRC churn: a peer holding the keys sends RTP with a new SSRC per packet, which
would make libsrtp create (and then search) a stream per SSRC.  Between real aiortc peer
connections with real SRTP, on the compiled path, the Python path and with the receive
poller: unknown SSRCs never reach libsrtp (it has no stream for them) and are counted
as dropped, the allowed ones flow, and an admitted SSRC is learned once it authenticated.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport

from client.receive_poller import ReceivePoller
from client.track_stats import TrackStats, watch_receiver
from sfu import rtc
from sfu.rtc import receive
from sfu.rtc.internals import rx_session, tx_session
from tests.support.eventually import eventually
from tests.support.rtp_tools import nominated_local_address

from .native_support import has_stream, rtp

PATHS = ["compiled", "python", "poller"]


class Policy:
    """The simplest policy: a fixed set of SSRCs, and ``budget`` unknown ones admitted."""

    def __init__(self, ssrcs: list[int], budget: int = 0) -> None:
        self.ssrcs = list(ssrcs)
        self.budget = budget
        self.dropped = 0
        self.asked: list[int] = []
        self.taught: list[int] = []

    def allowed(self) -> tuple[int, ...]:
        return tuple(self.ssrcs)

    def admit(self, ssrc: int) -> bool:
        self.asked.append(ssrc)
        if self.budget > 0:
            self.budget -= 1
            return True
        return False

    def learned(self, ssrc: int) -> None:
        self.taught.append(ssrc)
        self.ssrcs.append(ssrc)


@dataclass
class Pair:
    sender: RTCPeerConnection
    receiver: RTCPeerConnection
    stats: dict[str, TrackStats] = field(default_factory=dict)

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self.receiver.getTransceivers()[0].receiver.transport

    @property
    def state(self) -> Any:
        return receive._direct_state(self.dtls)

    def packets(self) -> int:
        return sum(s.packets for s in self.stats.values())

    def send_protected(self, *packets: bytes) -> None:
        """``packets`` protected with the sender's own keys, sent to the receiver's port
        (a signed-in peer's hostile client)."""
        session = tx_session(self.sender.getTransceivers()[0].sender.transport)
        address = nominated_local_address(self.dtls)
        with socket.socket(
            socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM
        ) as sock:
            for packet in packets:
                sock.sendto(session.protect(packet), address)


Connect = Callable[[str, Policy], Awaitable[Pair]]


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


@pytest.fixture
async def pairs(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Connect]:
    created: list[Pair] = []
    pollers: list[ReceivePoller] = []

    async def connect(path: str, policy: Policy) -> Pair:
        if path == "python":
            monkeypatch.setattr(receive, "FASTRECEIVE", False)  # as without the module
        poller = None
        if path == "poller":
            poller = ReceivePoller()
            pollers.append(poller)
        pair = Pair(_pc(), _pc())
        created.append(pair)
        pair.sender.addTrack(AudioStreamTrack())
        pair.sender.addTrack(VideoStreamTrack())
        rtc.receive_directly(pair.receiver, poller)

        @pair.receiver.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(
                t for t in pair.receiver.getTransceivers() if t.receiver.track is track
            )
            stats = pair.stats[str(transceiver.mid)] = TrackStats(
                str(transceiver.mid), track.kind, time.monotonic()
            )
            watch_receiver(transceiver.receiver, stats)

        await pair.sender.setLocalDescription(await pair.sender.createOffer())
        await pair.receiver.setRemoteDescription(pair.sender.localDescription)
        # the policy is in place before the first packet arrives
        policy.ssrcs += [
            s for t in pair.sender.getTransceivers() for s in rtc.sender_ssrcs(t.sender)
        ]
        rtc.set_ssrc_policy(pair.dtls, policy)
        await pair.receiver.setLocalDescription(await pair.receiver.createAnswer())
        await pair.sender.setRemoteDescription(pair.receiver.localDescription)
        await eventually(lambda: pair.state.installed, 20)
        if path == "python":
            assert pair.state.receivers == []
        else:
            assert pair.state.receivers and all(rx.filter for rx in pair.state.receivers)
        if path == "poller":
            await eventually(lambda: all(rx.registered for rx in pair.state.receivers), 10)
        await eventually(lambda: len(pair.stats) == 2 and pair.packets() > 40, 20)
        return pair

    yield connect
    for pair in created:
        await pair.sender.close()
        await pair.receiver.close()
    for poller in pollers:
        poller.close()


def unknown_in_c(pair: Pair) -> int:
    return sum(int(rx.unknown_ssrc) for rx in pair.state.receivers)


@pytest.mark.parametrize("path", PATHS)
async def test_ssrc_churn_never_reaches_libsrtp(pairs: Connect, path: str) -> None:
    policy = Policy([])
    pair = await pairs(path, policy)
    inbound = rx_session(pair.dtls)
    churn = [0x70000000 + n for n in range(40)]
    packets = pair.packets()
    pair.send_protected(*(rtp(ssrc, 1) for ssrc in churn))
    await eventually(lambda: policy.dropped == 40, 10)
    assert policy.asked == churn and policy.taught == []
    if path != "python":
        assert unknown_in_c(pair) == 40
    # libsrtp created no stream for any of them; it has those of the allowed SSRCs
    assert not [ssrc for ssrc in churn if has_stream(inbound, ssrc)]
    # the allowed ones still flow (and a stream removed above is made again)
    await eventually(lambda: pair.packets() > packets + 50, 10)
    assert rtc.direct_receive_failures(pair.receiver) == 0
    assert pair.receiver.connectionState == "connected"


@pytest.mark.parametrize("path", PATHS)
async def test_an_admitted_ssrc_is_learned_once_it_authenticates(pairs: Connect, path: str) -> None:
    policy = Policy([], budget=2)
    pair = await pairs(path, policy)
    inbound = rx_session(pair.dtls)
    # a forged datagram of an admitted SSRC fails to authenticate: not learned
    address = nominated_local_address(pair.dtls)
    with socket.socket(
        socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM
    ) as sock:
        sock.sendto(rtp(0x0BAD0BAD, 1) + bytes(16), address)
    await eventually(lambda: rtc.direct_receive_failures(pair.receiver) == 1, 10)
    assert policy.asked == [0x0BAD0BAD] and policy.taught == []
    # a real one is admitted, unprotected, learned; its later packets pass unasked
    pair.send_protected(rtp(0x5EED, 1))
    await eventually(lambda: policy.taught == [0x5EED], 10)
    assert 0x5EED in pair.state.allowed
    for rx in pair.state.receivers:
        assert 0x5EED in list(rx.allowed)[: rx.allowed_count]
    pair.send_protected(*(rtp(0x5EED, n) for n in range(2, 12)))
    pair.send_protected(rtp(0x0DD, 1))  # the budget is spent: refused
    await eventually(lambda: policy.dropped == 1, 10)
    assert policy.asked == [0x0BAD0BAD, 0x5EED, 0x0DD]
    assert has_stream(inbound, 0x5EED) and not has_stream(inbound, 0x0DD)
    assert not has_stream(inbound, 0x0BAD0BAD)


@pytest.mark.parametrize("path", ["compiled", "poller"])
async def test_refresh_pushes_the_table_and_no_policy_turns_the_filter_off(
    pairs: Connect, path: str
) -> None:
    policy = Policy([])
    pair = await pairs(path, policy)
    inbound = rx_session(pair.dtls)
    policy.ssrcs.append(0xA11)
    rtc.refresh_ssrc_policy(pair.dtls)
    pair.send_protected(rtp(0xA11, 1))
    await eventually(lambda: has_stream(inbound, 0xA11), 10)
    assert policy.asked == []
    rtc.set_ssrc_policy(pair.dtls, None)
    assert not any(rx.filter for rx in pair.state.receivers)
    pair.send_protected(rtp(0xB22, 1))
    await eventually(lambda: has_stream(inbound, 0xB22), 10)
    assert policy.dropped == 0 and unknown_in_c(pair) == 0
