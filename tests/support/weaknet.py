"""Weak networks for tests: participants in network namespaces, shaped links, a lossy relay.

What :class:`WeakNet` creates
    ``async with WeakNet() as net`` and then ``alice = await net.add("alice")`` creates, for
    each participant, a network namespace ``cwn-<pid>-<k>-alice`` and a veth pair joining it
    to the root namespace: ``cw<pid>_<k>`` in the root namespace (the server side),
    ``wn0`` inside the namespace.  Each pair has a /24 of its own in the benchmark range
    198.18.0.0/15: the root side is ``198.18.N.1`` (:attr:`Participant.server_address`),
    the participant ``198.18.N.2`` (:attr:`Participant.address`).  ``lo`` is up inside the
    namespace; no IPv6 addresses are generated on the veths (no router solicitations, no
    DAD traffic to disturb a measurement).  The namespace has one route, its /24: a
    participant reaches the root namespace through its server address and nothing else
    (no default route, so nothing leaves the machine; participants cannot reach each
    other).  A server in the root namespace listening on ``0.0.0.0`` (or on every
    participant's server address) serves them all, over UDP and TCP, both ways.

    The pid in every name keeps parallel pytest workers (``-n 2``) apart, and a lock file
    makes them pick distinct /24s.  On exit (also after an exception) the context stops
    the processes it started, deletes the root-side veths (which takes the namespace end
    with it) and the namespaces.  :func:`sweep` (run on every entry) removes what runs of
    processes that no longer exist left behind (a crashed or killed test run).

Code inside a namespace
    ``proc = await alice.start("tests.weaknet.probes:UdpSink", port=5004)`` runs
    ``ip netns exec <ns> python -m tests.support.weaknet <target> <kwargs>``: the child
    imports ``module:attribute`` (a dotted attribute is allowed, ``UdpRelay.open``), calls
    it with the JSON keyword arguments (and ``channel=`` the :class:`LineRpc` to the parent
    when it has a parameter named ``channel``), awaits the result if it is awaitable and
    serves it: ``await proc.call("snapshot")`` calls the object's public method (awaited
    when it returns an awaitable), or returns a public attribute's value.  Parameters and
    results are JSON.  ``await proc.stop()`` calls the object's ``close()`` when it has one
    and ends the child; a child whose parent is gone (stdin closed) ends by itself.  The
    child's stdout is the channel: anything it prints goes to its stderr (the test's).

Shaping (``tc``; ``tbf`` and ``htb``: ``netem`` is not built into these kernels)
    ``await alice.shape("down", Shape(300_000))`` limits what reaches alice (the egress
    of the root-side veth), ``"up"`` what alice sends (the egress of ``wn0``).  Calling
    it again changes the limit in place (``tc qdisc replace``) while traffic flows;
    ``await alice.shape("down", None)`` lifts it.  A limit counts whole Ethernet frames
    (a UDP payload plus 42 bytes).

Loss and delay
    :class:`UdpRelay` forwards datagrams between participants and one UDP target (a server
    port) with an :class:`Impairment` each way: random or bursty loss, fixed delay plus
    jitter, from a seeded random generator, so a run repeats.  It runs in the test's
    process (listening on a participant's server address, say) or in a namespace as a
    child (``participant.start("tests.support.weaknet:UdpRelay.open", ...)``).

A later test (issue #22's weak-network tests) reads::

    need_weaknet()                      # skips off CI without root or iproute2; fails in CI
    async with WeakNet() as net:
        alice, bob = await net.add("alice"), await net.add("bob")
        await alice.shape("down", Shape(300_000))
        client = await alice.start("tests.something:Client", url=f"https://{alice.server_address}:8443")
        ...

The tests of this harness are ``tests/weaknet/test_harness.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import importlib
import inspect
import ipaddress
import itertools
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

log = logging.getLogger("tests.weaknet")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMESPACE_PREFIX = "cwn-"
LINK_PREFIX = "cw"
#: The name of every participant's end of its veth pair, inside its namespace.
INNER_LINK = "wn0"
#: 198.18.0.0/15, reserved for benchmarking (RFC 2544): 512 /24s, one per participant.
ADDRESS_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
#: UDP payload + this = the Ethernet frame a shaper counts (Ethernet 14, IPv4 20, UDP 8).
UDP_FRAME_OVERHEAD = 42
#: The receive buffer of the relay's sockets (and the probes'), in bytes.
RECEIVE_BUFFER = 4 << 20
_LOCK_PATH = os.path.join(tempfile.gettempdir(), "caucus-weaknet.lock")
_NAMESPACE_NAME = re.compile(r"^cwn-(\d+)-")
_LINK_NAME = re.compile(r"^cw(\d+)_[0-9a-z]+$")
_pairs = itertools.count()


class WeakNetError(RuntimeError):
    """A command of the harness (``ip``, ``tc``) failed, or a child misbehaved."""


# --- commands --------------------------------------------------------------------------


async def _run(*argv: str, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if check and process.returncode != 0:
        raise WeakNetError(
            f"{' '.join(argv)} exited with {process.returncode}: {err.decode().strip()}"
        )
    return out.decode()


def need_weaknet() -> None:
    """Skip the calling test where namespaces cannot be made (not root, no ``ip``/``tc``),
    except in CI (``CI`` set), where that fails the test with the reason."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    reason = None
    if missing:
        reason = f"{' and '.join(missing)} not found: the weak-network tests need iproute2"
    elif os.geteuid() != 0:
        reason = "the weak-network tests create network namespaces: they must run as root"
    if reason is None:
        return
    import pytest

    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def namespaces() -> list[str]:
    """The names of the network namespaces ``ip netns`` knows."""
    out = await _run("ip", "netns", "list")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


async def links() -> list[str]:
    """The names of the root namespace's network interfaces."""
    out = await _run("ip", "-o", "link", "show")
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


async def sweep() -> list[str]:
    """Remove the namespaces and root-side veths whose creating process is gone; returns
    their names.  Those of running processes (a parallel test worker) are left alone."""
    removed = []
    for name in await links():
        match = _LINK_NAME.match(name)
        if match and not _alive(int(match.group(1))):
            await _run("ip", "link", "del", name, check=False)
            removed.append(name)
    for name in await namespaces():
        match = _NAMESPACE_NAME.match(name)
        if match and not _alive(int(match.group(1))):
            await _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    if removed:
        log.info("weaknet.sweep", extra={"removed": removed})
    return removed


class _AddressLock:
    """The file lock under which a process picks a free /24 and claims it (by adding its
    address), so that parallel test workers never pick the same one."""

    def __init__(self) -> None:
        self._fd = -1

    async def __aenter__(self) -> None:
        self._fd = os.open(_LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
        await asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX)

    async def __aexit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


async def _free_subnet() -> ipaddress.IPv4Network:
    out = await _run("ip", "-o", "-4", "addr", "show")
    used = set()
    for found in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
        address = ipaddress.IPv4Address(found.group(1))
        if address in ADDRESS_RANGE:
            used.add(ipaddress.IPv4Network(f"{address}/24", strict=False))
    for subnet in ADDRESS_RANGE.subnets(new_prefix=24):
        if subnet not in used:
            return subnet
    raise WeakNetError(f"every /24 of {ADDRESS_RANGE} is in use")


# --- shaping ---------------------------------------------------------------------------

Direction = Literal["up", "down"]
_MTU_FRAME = 1514


@dataclass(frozen=True)
class Shape:
    """A rate limit on one direction of a participant's link.

    ``rate`` in bit/s; ``burst`` in bytes (default: 20 ms at ``rate``, at least two
    full frames); ``latency``: the longest a frame waits in the queue before it is dropped
    (the queue holds ``rate * latency`` bytes).  ``kind``: ``tbf`` (a token bucket) or
    ``htb`` (one class of a hierarchical token bucket, a byte FIFO under it)."""

    rate: int
    burst: int | None = None
    latency: float = 0.05
    kind: Literal["tbf", "htb"] = "tbf"

    @property
    def burst_bytes(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(2 * _MTU_FRAME, self.rate // 8 // 50)

    @property
    def queue_bytes(self) -> int:
        return int(self.rate / 8 * self.latency) + self.burst_bytes

    def commands(self, device: str) -> list[list[str]]:
        """The ``tc`` commands (without ``tc`` and its ``-n``) that put it on ``device``."""
        rate = f"{self.rate}bit"
        if self.kind == "tbf":
            latency = f"{max(1, round(self.latency * 1000))}ms"
            return [
                [
                    *("qdisc", "replace", "dev", device, "root", "handle", "1:", "tbf"),
                    *("rate", rate, "burst", str(self.burst_bytes), "latency", latency),
                ]
            ]
        return [
            ["qdisc", "replace", "dev", device, "root", "handle", "1:", "htb", "default", "1"],
            [
                *("class", "replace", "dev", device, "parent", "1:", "classid", "1:1", "htb"),
                *("rate", rate, "ceil", rate, "burst", str(self.burst_bytes)),
            ],
            [
                *("qdisc", "replace", "dev", device, "parent", "1:1", "handle", "10:", "bfifo"),
                *("limit", str(self.queue_bytes)),
            ],
        ]


# --- participants ----------------------------------------------------------------------


@dataclass
class Participant:
    """One participant's namespace and veth pair, and the processes started in it."""

    name: str
    namespace: str
    #: The veth end in the root namespace: the server side of this participant's link.
    link: str
    #: The participant's address (on ``wn0`` in its namespace).
    address: str
    #: The root namespace's address on this participant's link: where it finds a server.
    server_address: str
    subnet: ipaddress.IPv4Network
    processes: list[NamespaceProcess] = field(default_factory=list)
    shapes: dict[str, Shape] = field(default_factory=dict)

    async def shape(self, direction: Direction, shape: Shape | None) -> None:
        """Limit (or with ``None`` lift the limit on) what reaches the participant
        (``"down"``: the root-side veth's egress) or what it sends (``"up"``: ``wn0``'s
        egress).  A new limit replaces the one in place while traffic flows; switching
        between ``tbf`` and ``htb`` replaces the root queueing discipline."""
        if direction == "down":
            tc, device = ["tc"], self.link
        elif direction == "up":
            tc, device = ["tc", "-n", self.namespace], INNER_LINK
        else:
            raise ValueError(f"direction is 'up' or 'down', not {direction!r}")
        previous = self.shapes.get(direction)
        if shape is None:
            if previous is not None:
                await _run(*tc, "qdisc", "del", "dev", device, "root")
                del self.shapes[direction]
            return
        if previous is not None and previous.kind != shape.kind:
            await _run(*tc, "qdisc", "del", "dev", device, "root")
        for command in shape.commands(device):
            await _run(*tc, *command)
        self.shapes[direction] = shape
        log.info(
            "weaknet.shape",
            extra={"participant": self.name, "direction": direction, "rate": shape.rate},
        )

    async def start(
        self,
        target: str,
        /,
        *,
        handlers: dict[str, Callable[..., Awaitable[Any]]] | None = None,
        **kwargs: Any,
    ) -> NamespaceProcess:
        """Start ``target`` (``"package.module:callable"``) in this participant's namespace
        as a child process and return once it serves (see the module's docstring);
        ``handlers`` answer the child's calls to the parent."""
        process = await NamespaceProcess.start(self.namespace, target, handlers=handlers, **kwargs)
        self.processes.append(process)
        return process


class WeakNet:
    """Namespaces joined to the root namespace by veth pairs, one per participant; an
    async context manager that removes them all on exit."""

    def __init__(self) -> None:
        self.participants: dict[str, Participant] = {}

    async def __aenter__(self) -> WeakNet:
        await sweep()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add(self, name: str) -> Participant:
        """A namespace for participant ``name`` (unique in this net), its link and its
        addresses, ready for traffic."""
        if name in self.participants:
            raise ValueError(f"participant {name!r} exists")
        pair = f"{os.getpid()}_{_base36(next(_pairs))}"
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:24]
        namespace = f"{NAMESPACE_PREFIX}{pair.replace('_', '-')}-{label}"
        link = f"{LINK_PREFIX}{pair}"
        if len(link) > 15:
            raise WeakNetError(f"interface name {link!r} is too long")
        await _run("ip", "netns", "add", namespace)
        participant = Participant(
            name, namespace, link, "", "", ADDRESS_RANGE, shapes={}, processes=[]
        )
        self.participants[name] = participant
        inside = ["ip", "-n", namespace]
        peer = ("peer", "name", INNER_LINK, "netns", namespace)
        await _run("ip", "link", "add", link, "type", "veth", *peer)
        await _run("ip", "link", "set", "dev", link, "addrgenmode", "none")
        await _run(*inside, "link", "set", "dev", INNER_LINK, "addrgenmode", "none")
        async with _AddressLock():
            subnet = await _free_subnet()
            hosts = list(itertools.islice(subnet.hosts(), 2))
            await _run("ip", "addr", "add", f"{hosts[0]}/24", "dev", link)
        participant.subnet = subnet
        participant.server_address, participant.address = str(hosts[0]), str(hosts[1])
        await _run(*inside, "addr", "add", f"{hosts[1]}/24", "dev", INNER_LINK)
        await _run("ip", "link", "set", "dev", link, "up")
        await _run(*inside, "link", "set", "dev", INNER_LINK, "up")
        await _run(*inside, "link", "set", "dev", "lo", "up")
        log.info(
            "weaknet.add",
            extra={"participant": name, "namespace": namespace, "address": participant.address},
        )
        return participant

    def names(self) -> set[str]:
        """The namespaces and root-side links this net made."""
        return {n for p in self.participants.values() for n in (p.namespace, p.link)}

    async def close(self) -> None:
        """Stop every process started in the namespaces; delete the links and namespaces.
        Every step is tried even when one fails; the first failure is raised after."""
        failures: list[BaseException] = []
        for participant in self.participants.values():
            for process in participant.processes:
                try:
                    await process.stop()
                except Exception as exc:
                    failures.append(exc)
        for participant in self.participants.values():
            for argv in (
                ("ip", "link", "del", participant.link),
                ("ip", "netns", "del", participant.namespace),
            ):
                try:
                    await _run(*argv)
                except WeakNetError as exc:
                    if "Cannot find device" not in str(exc) and "No such" not in str(exc):
                        failures.append(exc)
        self.participants.clear()
        if failures:
            raise failures[0]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text


# --- the control channel ---------------------------------------------------------------


class LineRpc:
    """Symmetric JSON-lines RPC over a pair of asyncio streams: each side calls the
    other's handlers by name; a call's reply carries its id."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handlers: dict[str, Callable[..., Awaitable[Any]]],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handlers = handlers
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._serving: set[asyncio.Future[Any]] = set()
        self.closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def call(self, method: str, *params: Any, within: float | None = 30.0) -> Any:
        """Call the other side's ``method`` with JSON ``params``; its JSON result, or
        ``TimeoutError`` after ``within`` seconds (``None``: no deadline)."""
        if self.closed.is_set():
            raise WeakNetError(f"the other side is gone (calling {method})")
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._send({"id": request_id, "method": method, "params": params})
        try:
            async with asyncio.timeout(within):
                return await future
        finally:
            self._waiting.pop(request_id, None)

    def _send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def _run(self) -> None:
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                if "method" in message:
                    task = asyncio.ensure_future(self._serve(message))
                    self._serving.add(task)
                    task.add_done_callback(self._serving.discard)
                    continue
                future = self._waiting.get(message["id"])
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(WeakNetError(message["error"]))
                else:
                    future.set_result(message.get("result"))
        finally:
            self.closed.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(WeakNetError("the other side is gone"))

    async def _serve(self, message: dict[str, Any]) -> None:
        try:
            handler = self._handlers.get(message["method"])
            if handler is None:
                raise WeakNetError(f"no method {message['method']!r}")
            result = await handler(*message["params"])
            self._send({"id": message["id"], "result": result})
        except Exception as exc:
            self._send({"id": message["id"], "error": repr(exc)})

    def close(self) -> None:
        self._task.cancel()


class NamespaceProcess:
    """A Python child process in a network namespace, served over :class:`LineRpc`."""

    def __init__(
        self,
        namespace: str,
        target: str,
        process: asyncio.subprocess.Process,
        handlers: dict[str, Callable[..., Awaitable[Any]]],
    ) -> None:
        self.namespace = namespace
        self.target = target
        self.process = process
        assert process.stdout is not None and process.stdin is not None
        writer: Any = process.stdin
        self.rpc = LineRpc(process.stdout, writer, handlers)

    @classmethod
    async def start(
        cls,
        namespace: str,
        target: str,
        /,
        *,
        handlers: dict[str, Callable[..., Awaitable[Any]]] | None = None,
        ready_within: float = 20.0,
        **kwargs: Any,
    ) -> NamespaceProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            "-m",
            "tests.support.weaknet",
            target,
            json.dumps(kwargs),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            limit=1 << 22,
        )
        child = cls(namespace, target, process, handlers or {})
        try:
            await child.rpc.call("__ready__", within=ready_within)
        except BaseException:
            await child.stop(within=1.0)
            raise
        log.info(
            "weaknet.child_started",
            extra={"namespace": namespace, "target": target, "pid": process.pid},
        )
        return child

    @property
    def pid(self) -> int:
        return self.process.pid

    async def call(self, method: str, *params: Any, within: float | None = 30.0) -> Any:
        """Call the served object's ``method`` with JSON ``params``; its JSON result."""
        return await self.rpc.call(method, *params, within=within)

    async def stop(self, within: float = 10.0) -> int:
        """Close the served object and end the child (terminated, then killed, when it
        does not end ``within`` seconds); its exit status."""
        if self.process.returncode is None and not self.rpc.closed.is_set():
            with contextlib.suppress(WeakNetError, TimeoutError):
                await self.rpc.call("__stop__", within=within)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
            try:
                async with asyncio.timeout(within if sig != signal.SIGKILL else None):
                    await self.process.wait()
                break
            except TimeoutError:
                continue
        self.rpc.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        assert self.process.returncode is not None
        return self.process.returncode


def _resolve(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ValueError(f"target is 'package.module:callable', not {target!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


async def _serve_child(target: str, kwargs: dict[str, Any]) -> None:
    """The child's side: serve ``target(**kwargs)`` over stdin and the original stdout."""
    loop = asyncio.get_running_loop()
    channel_fd = os.dup(1)
    os.dup2(2, 1)  # prints and stray output go to stderr, never into the channel
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(channel_fd, "wb")
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    stopped = asyncio.Event()
    served: Any = None
    constructed: asyncio.Future[None] = loop.create_future()

    async def ready() -> bool:
        await asyncio.shield(constructed)
        return True

    async def stop() -> None:
        close = getattr(served, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result
        stopped.set()

    class Dispatch(dict):
        def get(self, name: str, default: Any = None) -> Any:
            if name in self:
                return self[name]
            if name.startswith("_") or not hasattr(served, name):
                return default
            value = getattr(served, name)

            async def handler(*params: Any) -> Any:
                if not callable(value):
                    return value
                result = value(*params)
                return await result if inspect.isawaitable(result) else result

            return handler

    rpc = LineRpc(reader, writer, Dispatch(__ready__=ready, __stop__=stop))
    try:
        factory = _resolve(target)
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        if "channel" in parameters:
            kwargs = {**kwargs, "channel": rpc}
        served = factory(**kwargs)
        if inspect.isawaitable(served):
            served = await served
    except Exception as exc:
        log.exception("weaknet.child_failed", extra={"target": target})
        constructed.set_exception(exc)
        stopped.set()
    else:
        constructed.set_result(None)
    done = asyncio.ensure_future(stopped.wait())
    gone = asyncio.ensure_future(rpc.closed.wait())
    await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
    if gone.done() and not stopped.is_set():
        await stop()
    with contextlib.suppress(Exception):
        await writer.drain()
    await asyncio.sleep(0)  # the reply to __stop__ is written before the pipe closes
    writer.close()
    done.cancel()
    gone.cancel()


# --- loss and delay --------------------------------------------------------------------


@dataclass(frozen=True)
class Impairment:
    """What one direction of a :class:`UdpRelay` does to datagrams.

    ``loss``: the share of datagrams dropped (0..1).  ``burst``: the mean length of a run
    of lost datagrams; 1 drops each datagram independently, more uses a two-state
    (Gilbert) model: every datagram in the bad state is lost, the bad state is left with
    probability ``1/burst`` and entered with the probability that makes the mean loss
    ``loss``.  ``delay`` (seconds) is added to every datagram, plus ``jitter`` times a uniform
    random number in [0, 1); ``reorder`` lets jitter reorder datagrams (otherwise a
    datagram never leaves before the one received before it)."""

    loss: float = 0.0
    burst: float = 1.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss is in [0, 1), not {self.loss}")
        if self.burst < 1.0:
            raise ValueError(f"burst is at least 1, not {self.burst}")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter are not negative")


class _Path:
    """One direction of the relay: its impairment, random state, queue and counters."""

    def __init__(self, impairment: Impairment, rng: random.Random) -> None:
        self.impairment = impairment
        self._rng = rng
        self._bad = False
        self._queue: collections.deque[tuple[float, bytes, Callable[[bytes], None]]] = (
            collections.deque()
        )
        self._timer: asyncio.TimerHandle | None = None
        self._last_due = 0.0
        self.received = 0
        self.dropped = 0
        self.forwarded = 0

    def _lose(self) -> bool:
        impairment = self.impairment
        if impairment.loss <= 0.0:
            self._bad = False
            return False
        if impairment.burst <= 1.0:
            return self._rng.random() < impairment.loss
        leave = 1.0 / impairment.burst
        enter = impairment.loss * leave / (1.0 - impairment.loss)
        if self._bad:
            self._bad = self._rng.random() >= leave
        else:
            self._bad = self._rng.random() < enter
        return self._bad

    def push(self, data: bytes, send: Callable[[bytes], None]) -> None:
        self.received += 1
        if self._lose():
            self.dropped += 1
            return
        impairment = self.impairment
        if impairment.delay == 0.0 and impairment.jitter == 0.0 and not self._queue:
            self._send(data, send)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + impairment.delay + impairment.jitter * self._rng.random()
        if impairment.reorder:
            loop.call_at(due, self._send, data, send)
            return
        due = max(due, self._last_due)
        self._last_due = due
        self._queue.append((due, data, send))
        if self._timer is None:
            self._timer = loop.call_at(due, self._drain)

    def _send(self, data: bytes, send: Callable[[bytes], None]) -> None:
        self.forwarded += 1
        send(data)

    def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._queue and self._queue[0][0] <= now:
            _, data, send = self._queue.popleft()
            self._send(data, send)
        self._timer = loop.call_at(self._queue[0][0], self._drain) if self._queue else None

    def stats(self) -> dict[str, int]:
        return {"received": self.received, "dropped": self.dropped, "forwarded": self.forwarded}

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._queue.clear()


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._relay._from_client(data, addr)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, client: tuple[str, int]) -> None:
        self._relay = relay
        self._client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._relay._from_target(data, self._client)


class UdpRelay:
    """A UDP relay with loss and delay (``netem`` in user space): datagrams sent to
    :attr:`address` go to ``target`` through the ``uplink`` :class:`Impairment`; each
    client address gets a socket of its own towards the target (as behind a NAT), and
    what comes back on it goes to that client through the ``downlink`` one.

    Random choices come from ``random.Random`` seeded with ``seed`` (one per direction),
    so the same datagrams meet the same fate in every run.  Created with :meth:`open`;
    :meth:`impair` changes a direction's impairment while datagrams flow."""

    def __init__(
        self,
        target: tuple[str, int],
        uplink: Impairment,
        downlink: Impairment,
        seed: int,
        upstream_host: str,
    ) -> None:
        self.target = target
        self.upstream_host = upstream_host
        self.address: tuple[str, int] = ("", 0)
        self.paths = {
            "up": _Path(uplink, random.Random(f"{seed}-up")),
            "down": _Path(downlink, random.Random(f"{seed}-down")),
        }
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[tuple[str, int], _Upstream] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self._connecting: set[asyncio.Future[None]] = set()

    @classmethod
    async def open(
        cls,
        listen: tuple[str, int] | list[Any],
        target: tuple[str, int] | list[Any],
        *,
        uplink: Impairment | dict[str, Any] | None = None,
        downlink: Impairment | dict[str, Any] | None = None,
        seed: int = 0,
        upstream_host: str | None = None,
    ) -> UdpRelay:
        """A relay listening on ``listen`` (host, port; port 0 picks one) towards
        ``target``; its sockets towards the target bind ``upstream_host`` (default: the
        listening host when it is not a wildcard)."""
        host, port = listen
        relay = cls(
            (str(target[0]), int(target[1])),
            _impairment(uplink),
            _impairment(downlink),
            seed,
            upstream_host or (host if host not in ("", "0.0.0.0") else "0.0.0.0"),
        )
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(relay), local_addr=(host, int(port))
        )
        relay._listener = transport
        large_receive_buffer(transport)
        relay.address = transport.get_extra_info("sockname")[:2]
        return relay

    def impair(self, direction: Direction, **fields: Any) -> dict[str, Any]:
        """Change fields of ``direction``'s impairment (``"up"``: client to target);
        returns the impairment now in force."""
        path = self.paths[direction]
        path.impairment = replace(path.impairment, **fields)
        return path.impairment.__dict__.copy()

    def stats(self) -> dict[str, dict[str, int]]:
        """Datagrams received, dropped and forwarded, per direction."""
        return {direction: path.stats() for direction, path in self.paths.items()}

    def _from_client(self, data: bytes, client: tuple[str, int]) -> None:
        upstream = self._upstreams.get(client)
        if upstream is None:
            pending = self._pending.get(client)
            if pending is not None:
                pending.append(data)
                return
            self._pending[client] = [data]
            task = asyncio.ensure_future(self._connect(client))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
            return
        transport = upstream.transport
        assert transport is not None
        self.paths["up"].push(data, transport.sendto)

    async def _connect(self, client: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, client),
            local_addr=(self.upstream_host, 0),
            remote_addr=self.target,
        )
        large_receive_buffer(upstream.transport)
        self._upstreams[client] = upstream
        for data in self._pending.pop(client, []):
            self._from_client(data, client)

    def _from_target(self, data: bytes, client: tuple[str, int]) -> None:
        listener = self._listener
        if listener is None:
            return
        self.paths["down"].push(data, lambda payload: listener.sendto(payload, client))

    def close(self) -> None:
        for task in self._connecting:
            task.cancel()
        for path in self.paths.values():
            path.close()
        for upstream in self._upstreams.values():
            if upstream.transport is not None:
                upstream.transport.close()
        self._upstreams.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def large_receive_buffer(transport: asyncio.BaseTransport | None) -> None:
    """4 MiB of receive buffer (beyond ``rmem_max`` as root): a relay stalled by a busy
    machine for a few tens of milliseconds queues datagrams instead of losing them."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
            return
        except OSError:
            continue


def _impairment(value: Impairment | dict[str, Any] | None) -> Impairment:
    if value is None:
        return Impairment()
    if isinstance(value, Impairment):
        return value
    return Impairment(**value)


# --- helpers for measuring -------------------------------------------------------------


def kbit_per_s(payload_bytes: int, datagrams: int, seconds: float) -> float:
    """The rate, in kbit/s of Ethernet frames, of ``datagrams`` UDP datagrams carrying
    ``payload_bytes`` in all over ``seconds``: what a :class:`Shape` limits."""
    return (payload_bytes + datagrams * UDP_FRAME_OVERHEAD) * 8 / seconds / 1000


def monotonic() -> float:
    """The clock every namespace shares (``CLOCK_MONOTONIC``): children report times on it."""
    return time.monotonic()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve_child(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}))
