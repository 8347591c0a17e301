"""The weak-network harness (``tests/support/weaknet.py``) measured: namespaces that reach a
server in the root namespace, links shaped to a rate and lifted again, a relay that loses
and delays what it is asked to, and nothing left behind.

Rates are measured at the receiver over a window (the window is the measurement; nothing
else sleeps) in kbit/s of Ethernet frames, what ``tc`` limits.  Tolerances are wide
enough for a machine whose two cores are shared with a benchmark, and narrow enough that
an unshaped link (~1 Mbit/s here) or a missing delay would fail."""

from __future__ import annotations

import asyncio
import os
import statistics
from typing import Any

import pytest

from tests.support.eventually import eventually
from tests.support.weaknet import (
    Impairment,
    NamespaceProcess,
    Shape,
    UdpRelay,
    WeakNet,
    _run,
    links,
    namespaces,
    need_weaknet,
    sweep,
)

from .probes import Pinger, TcpEcho, UdpEcho, UdpSink, UdpSource, rate_kbit, tcp_roundtrip

pytestmark = pytest.mark.weaknet

#: What the senders push: 1 Mbit/s of payload in 1000-byte datagrams (~1042 kbit/s of
#: frames).
SEND_RATE = 1_000_000
LIMIT = 300_000
SINK = "tests.weaknet.probes:UdpSink.open"

Sink = NamespaceProcess | UdpSink


async def snapshot(sink: Sink) -> dict[str, Any]:
    if isinstance(sink, UdpSink):
        return sink.snapshot()
    return await sink.call("snapshot")


async def rates(sinks: list[Sink], seconds: float) -> list[float]:
    """Each sink's receive rate over the next ``seconds``, in kbit/s of frames."""
    before = [await snapshot(sink) for sink in sinks]
    await asyncio.sleep(seconds)  # the measurement window
    after = [await snapshot(sink) for sink in sinks]
    return [rate_kbit(b, a) for b, a in zip(before, after, strict=True)]


async def receiving(sinks: list[Sink]) -> None:
    async def all_receive() -> bool:
        return all([(await snapshot(sink))["datagrams"] > 0 for sink in sinks])

    await eventually(all_receive, within=10, what="every sink receives datagrams")


async def test_participants_reach_a_server_in_the_root_namespace_over_udp_and_tcp(
    net: WeakNet,
) -> None:
    alice, bob = await net.add("alice"), await net.add("bob")
    assert alice.subnet != bob.subnet
    assert alice.namespace != bob.namespace and alice.link != bob.link
    udp, tcp = await UdpEcho.open(), await TcpEcho.open()
    try:
        for participant in (alice, bob):
            pinger = await participant.start("tests.weaknet.probes:Pinger.open")
            rtts = await pinger.call("rtts", participant.server_address, udp.port, 3)
            assert len(rtts) == 3 and max(rtts) < 1.0
            said = f"hello from {participant.name}"
            assert (
                await pinger.call("tcp_roundtrip", participant.server_address, tcp.port, said)
                == said
            )
            # one route, the participant's /24: nothing leaves the machine from a namespace
            assert "unreachable" in await pinger.call("unreachable", "203.0.113.7", 9)

        # and the root namespace reaches servers inside the namespaces, by their addresses
        for participant in (alice, bob):
            server = await participant.start("tests.weaknet.probes:TcpEcho.open")
            port = await server.call("port")
            assert await tcp_roundtrip(participant.address, port, "from root") == "from root"
            echo = await participant.start("tests.weaknet.probes:UdpEcho.open")
            pinger = await Pinger.open()
            try:
                assert len(await pinger.rtts(participant.address, await echo.call("port"), 2)) == 2
            finally:
                pinger.close()
    finally:
        udp.close()
        tcp.close()


async def test_a_shaped_downlink_delivers_its_rate_changes_in_flight_and_lifts(
    net: WeakNet,
) -> None:
    alice, bob = await net.add("alice"), await net.add("bob")
    sinks: list[Sink] = [await p.start(SINK) for p in (alice, bob)]
    await alice.shape("down", Shape(LIMIT))
    sources = [UdpSource(), UdpSource()]
    try:
        for source, participant, sink in zip(sources, (alice, bob), sinks, strict=True):
            assert isinstance(sink, NamespaceProcess)
            source.start(participant.address, await sink.call("port"), SEND_RATE)
        await receiving(sinks)

        shaped, unshaped = await rates(sinks, 3.0)
        print(f"downlink: shaped {shaped:.0f} kbit/s (tbf 300), unshaped {unshaped:.0f} kbit/s")
        assert 200 <= shaped <= 400, f"alice behind 300 kbit/s tbf receives {shaped:.0f} kbit/s"
        assert unshaped >= 800, f"bob, unshaped, receives {unshaped:.0f} kbit/s of ~1042"

        await alice.shape("down", Shape(600_000, kind="htb"))  # while datagrams flow
        (changed,) = await rates(sinks[:1], 2.0)
        print(f"downlink: changed to htb 600 kbit/s: {changed:.0f} kbit/s")
        assert 450 <= changed <= 750, f"alice behind 600 kbit/s htb receives {changed:.0f}"

        await alice.shape("down", None)
        (lifted,) = await rates(sinks[:1], 2.0)
        print(f"downlink: lifted: {lifted:.0f} kbit/s")
        assert lifted >= 800, f"alice, limit lifted, receives {lifted:.0f} kbit/s of ~1042"
    finally:
        for source in sources:
            source.stop()


async def test_a_shaped_uplink_delivers_its_rate_and_lifts(net: WeakNet) -> None:
    alice = await net.add("alice")
    sink = await UdpSink.open(alice.server_address)
    source = await alice.start("tests.weaknet.probes:UdpSource")
    try:
        await alice.shape("up", Shape(LIMIT))
        await source.call("start", alice.server_address, sink.port, SEND_RATE)
        await receiving([sink])

        (shaped,) = await rates([sink], 2.5)
        print(f"uplink: shaped {shaped:.0f} kbit/s (tbf 300)")
        assert 200 <= shaped <= 400, f"alice's uplink behind 300 kbit/s delivers {shaped:.0f}"

        await alice.shape("up", None)
        (lifted,) = await rates([sink], 1.5)
        print(f"uplink: lifted {lifted:.0f} kbit/s")
        assert lifted >= 800, f"alice's uplink, limit lifted, delivers {lifted:.0f} kbit/s"
    finally:
        await source.call("stop")
        sink.close()


async def test_the_relay_adds_at_least_its_delay(net: WeakNet) -> None:
    alice = await net.add("alice")
    echo = await UdpEcho.open(alice.server_address)
    pinger = await alice.start("tests.weaknet.probes:Pinger.open")
    relay = await UdpRelay.open(
        (alice.server_address, 0),
        (alice.server_address, echo.port),
        uplink=Impairment(delay=0.030, jitter=0.010),
        downlink=Impairment(delay=0.020),
        seed=7,
    )
    try:
        direct = await pinger.call("rtts", alice.server_address, echo.port, 10)
        through = await pinger.call("rtts", *relay.address, 10)
    finally:
        relay.close()
        echo.close()
    added = statistics.median(through) - statistics.median(direct)
    print(
        f"relay delay 30+20 ms (+0..10 jitter): round trip {statistics.median(direct) * 1000:.2f}"
        f" ms direct, {statistics.median(through) * 1000:.1f} ms through (min"
        f" {min(through) * 1000:.1f}), added {added * 1000:.1f} ms"
    )
    assert min(through) >= 0.050, f"a round trip through the relay took {min(through):.4f} s"
    assert added >= 0.050
    assert added <= 0.050 + 0.010 + 0.100, f"the relay added {added:.3f} s"


def lost_runs(sent: range, received: list[int]) -> list[int]:
    """The lengths of the runs of consecutive sequence numbers in ``sent`` not received."""
    got = set(received)
    runs, run = [], 0
    for sequence in sent:
        if sequence in got:
            if run:
                runs.append(run)
            run = 0
        else:
            run += 1
    if run:
        runs.append(run)
    return runs


async def test_the_relay_loses_the_share_it_is_asked_to_at_random_and_in_bursts(
    net: WeakNet,
) -> None:
    alice = await net.add("alice")
    echo = await UdpEcho.open(alice.server_address)
    pinger = await alice.start("tests.weaknet.probes:Pinger.open")
    relay = await UdpRelay.open(
        (alice.server_address, 0),
        (alice.server_address, echo.port),
        uplink=Impairment(loss=0.10),
        seed=22,
    )

    async def send(first: int, count: int = 2000) -> list[int]:
        """Datagrams ``first`` … through the relay; the sequence numbers echoed back, once
        every datagram the relay forwarded has come back to alice."""
        up, down = relay.stats()["up"], relay.stats()["down"]
        echoed = echo.echoed
        await pinger.call("burst", *relay.address, count, 2000.0, first)
        await eventually(
            lambda: relay.stats()["up"]["received"] - up["received"] == count,
            within=10,
            what=f"the relay receives the {count} datagrams",
            details=lambda: repr(relay.stats()),
        )

        async def all_back() -> bool:
            forwarded = relay.stats()["up"]["forwarded"] - up["forwarded"]
            returned = relay.stats()["down"]["forwarded"] - down["forwarded"]
            echoes = await pinger.call("echoes", first, first + count)
            return forwarded == echo.echoed - echoed == returned == len(echoes)

        await eventually(all_back, within=10, what="every forwarded datagram's echo is back")
        return await pinger.call("echoes", first, first + count)

    try:
        random_echoes = await send(0)
        random_loss = 1 - len(random_echoes) / 2000

        relay.impair("up", loss=0.10, burst=4.0)  # while the relay runs
        burst_echoes = await send(2000)
        burst_loss = 1 - len(burst_echoes) / 2000
        runs = lost_runs(range(2000, 4000), burst_echoes)
    finally:
        relay.close()
        echo.close()
    mean_run = statistics.mean(runs) if runs else 0.0
    print(
        f"relay loss asked 10%: random {random_loss:.3f} (runs of mean"
        f" {statistics.mean(lost_runs(range(2000), random_echoes)):.2f}); burst 4:"
        f" {burst_loss:.3f}, {len(runs)} runs of mean {mean_run:.2f}"
    )
    assert 0.07 <= random_loss <= 0.13, f"asked 10% at random, lost {random_loss:.3f}"
    assert 0.05 <= burst_loss <= 0.16, f"asked 10% in bursts, lost {burst_loss:.3f}"
    assert 2.5 <= mean_run <= 7.0, f"asked runs of 4 on average, measured {mean_run:.2f}"


async def test_the_relay_runs_inside_a_namespace(net: WeakNet) -> None:
    bob = await net.add("bob")
    echo = await UdpEcho.open(bob.server_address)
    relay = await bob.start(
        "tests.support.weaknet:UdpRelay.open",
        listen=["0.0.0.0", 0],
        target=[bob.server_address, echo.port],
        downlink={"delay": 0.040},
        seed=1,
    )
    pinger = await Pinger.open()
    try:
        _, port = await relay.call("address")
        rtts = await pinger.rtts(bob.address, port, 5)
        stats = await relay.call("stats")
    finally:
        pinger.close()
        echo.close()
    assert min(rtts) >= 0.040, rtts
    assert stats["up"]["forwarded"] == stats["down"]["forwarded"] == 5, stats


# --- cleanup ---------------------------------------------------------------------------


async def leftovers(names: set[str]) -> set[str]:
    return names & (set(await namespaces()) | set(await links()))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("fails", [False, True], ids=["exits", "fails"])
async def test_nothing_remains_after_the_context_even_when_it_fails(fails: bool) -> None:
    need_weaknet()
    made: set[str] = set()
    children: list[int] = []

    async def use_a_net() -> None:
        nonlocal made
        async with WeakNet() as net:
            for name in ("alice", "bob"):
                participant = await net.add(name)
                await participant.shape("down", Shape(LIMIT))
                await participant.shape("up", Shape(LIMIT, kind="htb"))
                children.append((await participant.start(SINK)).pid)
            made = net.names()
            assert await leftovers(made) == made
            if fails:
                raise RuntimeError("a failure inside the context")

    if fails:
        with pytest.raises(RuntimeError, match="inside the context"):
            await use_a_net()
    else:
        await use_a_net()
    assert len(made) == 4

    async def gone() -> bool:
        return not await leftovers(made)

    await eventually(gone, within=10, what=f"none of {sorted(made)} remains")
    assert not any(alive(pid) for pid in children)


async def test_sweep_removes_what_a_dead_run_left_and_spares_a_live_one(net: WeakNet) -> None:
    alice = await net.add("alice")
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    namespace, link = f"cwn-{dead.pid}-0-crashed", f"cw{dead.pid}_0"
    await _run("ip", "netns", "add", namespace)
    await _run("ip", "link", "add", link, "type", "veth", "peer", "name", "wn0", "netns", namespace)

    removed = await sweep()

    assert {namespace, link} <= set(removed)
    assert not await leftovers({namespace, link})
    assert await leftovers(net.names()) == {alice.namespace, alice.link}


@pytest.mark.parametrize("ci", ["", "true"])
def test_without_iproute2_a_test_skips_except_in_ci_where_it_fails(
    ci: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr("shutil.which", lambda tool: None)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="iproute2"):
        need_weaknet()
