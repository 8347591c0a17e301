"""The aiortc boundary's replacements behave as aiortc's and aioice's own (what each
relies on is in ``sfu.rtc.requirements``, checked by ``test_requirements.py``)."""

import pytest
from aiortc import RTCPeerConnection

from sfu import rtc
from sfu.rtc import native, receive


@pytest.mark.parametrize("native", [True, False], ids=["compiled", "python"])
async def test_rtp_writer_protects_in_place_and_sends_on_the_pair_socket(native):
    """RtpWriter's shortcut below aiortc: the nominated pair's socket (asyncio ``_sock``),
    pylibsrtp's context and ``srtp_protect``; the receiver must unprotect what it sent.
    Both the compiled path and the Python one; leaving the connected state (aiortc's
    ``statechange``) stops the writer."""
    import asyncio
    import os
    import struct
    from types import SimpleNamespace

    import pylibsrtp
    from aiortc.rtcdtlstransport import State
    from pyee import EventEmitter

    key = os.urandom(28)

    def session() -> pylibsrtp.Session:
        policy = pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        )
        return pylibsrtp.Session(policy)

    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            received.put_nowait(data)

    sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    source, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        assert hasattr(source, "_sock")
        pair = SimpleNamespace(
            protocol=SimpleNamespace(transport=source),
            remote_addr=sink.get_extra_info("sockname"),
        )
        dtls = EventEmitter()
        dtls._tx_srtp = session()
        dtls._state = State.CONNECTED
        dtls.transport = SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair}))
        assert hasattr(dtls._tx_srtp, "_srtp")
        writer = rtc.RtpWriter(dtls)
        if native:
            assert rtc.FASTPATH, "sfu._fastpath is not built"
        writer.native = native
        tail = os.urandom(1000)
        # a mutable buffer too (the load client writes VP8 picture ids into its tails)
        assert writer.forward(0x80, 96 | 0x80, 7, 90000, 1234, bytearray(tail)) == 1012
        assert writer.write_rtp(struct.pack("!BBHII", 0x80, 96, 8, 90000, 1234) + tail)
        rx = pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        )
        unprotect = pylibsrtp.Session(rx).unprotect
        first = unprotect(await asyncio.wait_for(received.get(), 2))
        second = unprotect(await asyncio.wait_for(received.get(), 2))
        assert first == struct.pack("!BBHII", 0x80, 0xE0, 7, 90000, 1234) + tail
        assert second[2:4] == b"\x00\x08" and second[12:] == tail
        assert (writer.packets, writer.bytes, writer.dropped) == (2, 2024, 0)
        dtls._state = State.CLOSED
        dtls.emit("statechange")
        assert writer.forward(0x80, 96, 9, 90000, 1234, tail) == 0
        assert received.empty()
    finally:
        sink.close()
        source.close()


async def test_keep_consent_is_installed_on_the_ice_connection():
    from aioice.ice import StunProtocol

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="sendonly")
    connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    for name in ("remote_password", "_nominated", "close"):
        assert hasattr(connection, name), f"Connection.{name} is gone"
    assert rtc.consent_stats(pc) is None
    rtc.keep_consent(pc, 5.0, 30.0)
    installed = connection.query_consent
    rtc.keep_consent(pc, 1.0, 2.0)
    assert connection.query_consent is installed
    assert rtc.consent_stats(pc) == (0, 0)
    assert isinstance(StunProtocol(connection).transactions, dict)
    await pc.close()


async def test_port_range_gathering_matches_aioice_but_for_the_port():
    import socket

    from aioice.ice import Connection, get_host_addresses
    from aiortc import RTCConfiguration

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # the SFU's: no STUN/TURN
    pc.addTransceiver("video", direction="sendonly")
    replaced = pc.getTransceivers()[0].receiver.transport.transport._connection
    for name in ("stun_server", "turn_server", "_protocols"):
        assert hasattr(replaced, name), f"Connection.{name} is gone"
    rtc.bind_ports_in_range(pc, 21000, 21999)
    installed = replaced.get_component_candidates
    rtc.bind_ports_in_range(pc, 22000, 22999)
    assert replaced.get_component_candidates is installed
    own = Connection(ice_controlling=False)
    try:
        await replaced.gather_candidates()
        await own.gather_candidates()

        def described(candidate):
            return (
                candidate.foundation,
                candidate.component,
                candidate.transport,
                candidate.priority,
                candidate.host,
                candidate.type,
            )

        assert sorted(map(described, replaced.local_candidates)) == sorted(
            map(described, own.local_candidates)
        )
        assert len(replaced.local_candidates) == len(get_host_addresses(True, True))
        assert all(21000 <= c.port <= 21999 for c in replaced.local_candidates)
        bound = rtc.local_addresses(pc)
        assert sorted(bound) == sorted((c.host, c.port) for c in replaced.local_candidates)
        for protocol in replaced._protocols:
            sock = protocol.transport.get_extra_info("socket")
            own_sock = own._protocols[0].transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == own_sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF
            )
            assert protocol.local_candidate in replaced.local_candidates
    finally:
        await own.close()
        await pc.close()
    assert rtc.local_addresses(pc) == []


def test_direct_receive_replicates_aiortcs_receive_path():
    """receive_directly takes over, for RTP only, what aioice and aiortc do per datagram:
    aioice queues non-STUN datagrams for the DTLS transport's ``_recv_next``, which
    unprotects SRTP with ``_rx_srtp`` and hands the packet parsed with the transport's
    extension map to the receiver that ``_rtp_router`` picks by SSRC and payload type."""
    import asyncio

    from aioice.ice import Connection
    from aiortc import clock

    # the source snippets it relies on are REQUIREMENTS entries (test_requirements.py)
    assert isinstance(Connection(ice_controlling=True).__dict__["_queue"], asyncio.Queue)
    # arrival times count from 1900, as aiortc's do
    ours = int(__import__("time").time() * 1000) + receive.NTP_EPOCH_MS
    assert abs(clock.current_ms() - ours) < 1000
    # the in-place unprotect of the rx session's context
    assert callable(native.srtp_unprotect)


async def test_idle_rtcp_loops_wait_to_be_cancelled_and_stop_cleanly():
    """A silenced sender's RTCP loop and a stopped receiver's wait to be cancelled instead
    of waking every 0.5-1.5 s to build reports; they set the events aiortc's ``stop()``
    waits for, also for a receiver whose loop was already running."""
    import asyncio

    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio", direction="sendrecv")
    sender, receiver = transceiver.sender, transceiver.receiver
    feedback: list[object] = []
    rtc.intercept_sender_rtcp(sender, feedback.append)
    loop = asyncio.get_running_loop()
    timers = len(loop._scheduled)  # type: ignore[attr-defined]  # the loop's timer heap, to count timers
    loop_task = asyncio.ensure_future(sender._run_rtcp())
    await sender._RTCRtpSender__rtcp_started.wait()
    await asyncio.sleep(0)
    # aiortc's loop would sleep 0.5-1.5 s on a timer before its first report
    assert len(loop._scheduled) == timers and not loop_task.done()  # type: ignore[attr-defined]  # the loop's timer heap, to count timers
    loop_task.cancel()
    await asyncio.wait_for(sender._RTCRtpSender__rtcp_exited.wait(), 5)
    assert feedback == []
    # a receiver whose aiortc loop already runs: it is cancelled, and exits
    running = asyncio.ensure_future(receiver._run_rtcp())
    receiver._RTCRtpReceiver__rtcp_task = running
    await asyncio.wait_for(receiver._RTCRtpReceiver__rtcp_started.wait(), 5)
    rtc.stop_receiver_reports(receiver)
    await asyncio.wait_for(receiver._RTCRtpReceiver__rtcp_exited.wait(), 5)
    assert running.done()
    await pc.close()
