"""The UDP port range: every SFU ICE socket binds a port inside it, and a range with no
free port left refuses the transport with a clear error, leaking nothing."""

import asyncio
import random
import re
import socket

import pytest
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import get_host_addresses
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from client import LocalSignal, Participant
from sfu import MediaSettings, NoFreePort, Worker, rtc
from tests.support.eventually import eventually

_CANDIDATE = re.compile(r"^a=candidate:(\S+) (\d+) udp (\d+) (\S+) (\d+) typ (\S+)", re.M)


def host_addresses() -> list[str]:
    """The addresses aioice gathers host candidates on (what the SFU binds per component)."""
    return get_host_addresses(use_ipv4=True, use_ipv6=True)


def free_range(size: int) -> tuple[int, int]:
    """``size`` consecutive ports below the ephemeral range, free on every host address."""
    for _ in range(200):
        first = random.randrange(20000, 32000 - size)
        if all(
            port_is_free(address, port)
            for address in host_addresses()
            for port in range(first, first + size)
        ):
            return first, first + size - 1
    raise RuntimeError(f"no {size} free consecutive UDP ports")


def port_is_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def candidates(sdp: str) -> set[tuple[str, int, int, str, int, str]]:
    """The SDP's candidates (each bundled m-line repeats the transport's)."""
    return {
        (foundation, int(component), int(priority), host, int(port), kind)
        for foundation, component, priority, host, port, kind in _CANDIDATE.findall(sdp)
    }


def assert_host_candidates_in(sdp: str, first: int, last: int) -> None:
    found = candidates(sdp)
    assert sorted(c[3] for c in found) == sorted(host_addresses())
    for foundation, component, priority, host, port, kind in found:
        assert first <= port <= last, (host, port)
        # aioice's own candidate: host type, its priority and foundation
        assert kind == "host" and component == 1
        assert priority == candidate_priority(1, "host")
        assert foundation == candidate_foundation("host", "udp", host)


async def test_three_participants_get_media_through_sockets_inside_the_range():
    first, last = free_range(20)
    worker = Worker(MediaSettings(udp_port_min=first, udp_port_max=last))
    clients = [Participant(name, LocalSignal(worker, "room")) for name in ("a", "b", "c")]
    try:
        for client in clients:
            await client.join()
        await eventually(
            lambda: all(
                c.frames_from_all(2, "video") and c.frames_from_all(2, "audio") for c in clients
            ),
            20,
        )
        transports = worker.transports
        assert sorted(t.direction for t in transports) == ["publish"] * 3 + ["subscribe"] * 3
        ports = []
        for transport in transports:
            assert transport.connection_state == "connected"
            # one socket per host address (one component: RTP and RTCP are multiplexed)
            bound = rtc.local_addresses(transport._pc)
            assert sorted(host for host, _ in bound) == sorted(host_addresses())
            assert all(first <= port <= last for _, port in bound), bound
            ports += [port for _, port in bound]
            assert_host_candidates_in(transport._pc.localDescription.sdp, first, last)
        assert len(ports) == 6 * len(host_addresses())
        # what the clients were told: the publish answers and the subscribe offers
        for client in clients:
            assert_host_candidates_in(client._publish_pc.remoteDescription.sdp, first, last)
            assert_host_candidates_in(client._subscribe_pc.remoteDescription.sdp, first, last)
    finally:
        for client in clients:
            await client.close()
        await worker.close()


async def offer(pc: RTCPeerConnection) -> str:
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


def pending_tasks(before: set[asyncio.Task]) -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t not in before and not t.done()}


async def test_an_exhausted_range_refuses_the_transport_and_leaks_nothing():
    # each transport binds one socket per host address: two ports serve two transports
    first, last = free_range(2)
    before = asyncio.all_tasks()
    worker = Worker(MediaSettings(udp_port_min=first, udp_port_max=last))
    configuration = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    clients = [RTCPeerConnection(configuration) for _ in range(3)]
    try:
        served = []
        for i, client in enumerate(clients[:2]):
            transport = await worker.create_transport(f"p{i}", "publish")
            answer = await transport.accept_offer(await offer(client))
            await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            assert_host_candidates_in(answer, first, last)
            served.append(transport)
        await eventually(
            lambda: all(
                c.connectionState == t.connection_state == "connected"
                for c, t in zip(clients, served, strict=False)
            ),
            10,
        )
        tasks_before_refusal = asyncio.all_tasks()

        refused = await worker.create_transport("p2", "publish")
        with pytest.raises(NoFreePort) as raised:
            await refused.accept_offer(await offer(clients[2]))
        assert raised.value.code == "no-free-port"
        assert raised.value.message == f"no free UDP port in range {first}-{last}"
        assert refused.closed and refused.connection_state == "closed"
        assert rtc.local_addresses(refused._pc) == []
        assert worker.transports == served

        # a subscribe transport gathers when it makes its first offer: refused the same way
        subscriber = await worker.create_transport("p3", "subscribe")
        subscriber.consume(next(iter(served[0].producers.values())))
        with pytest.raises(NoFreePort):
            await subscriber.create_offer()
        assert subscriber.closed and worker.transports == served
        await eventually(lambda: not pending_tasks(tasks_before_refusal), 5)

        # the refused transports hold no port: closing one served transport frees exactly
        # its ports, and the next transport gets them
        freed = rtc.local_addresses(served[0]._pc)
        await served[0].close()
        assert all(port_is_free(host, port) for host, port in freed)
        retry = await worker.create_transport("p2", "publish")
        await clients[2].close()
        clients[2] = RTCPeerConnection(configuration)
        answer = await retry.accept_offer(await offer(clients[2]))
        assert sorted(rtc.local_addresses(retry._pc)) == sorted(freed)
        assert_host_candidates_in(answer, first, last)
    finally:
        for client in clients:
            await client.close()
        await worker.close()
    assert worker.transports == []
    assert all(port_is_free(a, p) for a in host_addresses() for p in range(first, last + 1))
    await eventually(lambda: not pending_tasks(before), 5)


async def test_without_a_range_the_system_chooses_the_ports():
    worker = Worker(MediaSettings())
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transport = await worker.create_transport("p", "publish")
        answer = await transport.accept_offer(await offer(client))
        found = candidates(answer)
        assert sorted(c[3] for c in found) == sorted(host_addresses())
        assert all(c[5] == "host" for c in found)
    finally:
        await client.close()
        await worker.close()


async def test_ports_in_use_are_skipped_and_a_partial_bind_is_released():
    addresses = host_addresses()
    if len(addresses) < 2:
        pytest.skip("needs two host addresses")
    first, last = free_range(3)
    worker = Worker(MediaSettings(udp_port_min=first, udp_port_max=last))
    configuration = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    clients = [RTCPeerConnection(configuration) for _ in range(2)]
    held: dict[str, list[socket.socket]] = {}
    try:
        # another program holds all but the last port of the range, on every address
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            held[address] = []
            for port in (first, first + 1):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.bind((address, port))
                held[address].append(sock)
        transport = await worker.create_transport("a", "publish")
        answer = await transport.accept_offer(await offer(clients[0]))
        assert sorted(rtc.local_addresses(transport._pc)) == sorted(
            (address, last) for address in addresses
        )
        assert_host_candidates_in(answer, last, last)

        # the other ports come free except on the last address: a transport binds the
        # first addresses, finds no port on the last one and must release what it bound
        for address in addresses[:-1]:
            for sock in held.pop(address):
                sock.close()
        refused = await worker.create_transport("b", "publish")
        with pytest.raises(NoFreePort, match=f"no free UDP port in range {first}-{last}"):
            await refused.accept_offer(await offer(clients[1]))
        assert refused.closed and worker.transports == [transport]
        for address in addresses[:-1]:
            assert port_is_free(address, first) and port_is_free(address, first + 1)
    finally:
        for socks in held.values():
            for sock in socks:
                sock.close()
        for client in clients:
            await client.close()
        await worker.close()
