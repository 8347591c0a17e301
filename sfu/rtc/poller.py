"""Receive pollers: the media sockets of many connections read in one C call, instead
of one event-loop wake-up, one asyncio read and one protocol call per socket and event
(see :class:`ReceivePoller`).  The SFU's is driven by the readiness of its epoll set;
the load client's by a timer."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .internals import resume_reading, stop_reading, transport_loop
from .native import FASTRECEIVE, NATIVE, address_of

logger = logging.getLogger(__name__)

if FASTRECEIVE:
    _poll = NATIVE.lib.caucus_poll


class _Attached:
    """One socket a :class:`ReceivePoller` reads: its receiver, the asyncio transport and
    socket it took from asyncio's selector, the handler of what the receiver leaves for
    Python, and the receiver's owner (its :class:`_DirectState`, which holds the SRTP
    session the receiver points into for as long as the poller may read for it)."""

    __slots__ = ("handler", "owner", "rx", "sock", "transport")

    def __init__(
        self,
        rx: Any,
        transport: Any,
        sock: socket.socket,
        handler: Callable[[int], None],
        owner: Any,
    ) -> None:
        self.rx = rx
        self.transport = transport
        self.sock = sock
        self.handler = handler
        self.owner = owner


class ReceivePoller:
    """Reads the sockets of the connections given to :func:`sfu.rtc.receive_directly` with
    ``poller=``, all of them in one C call (``caucus_poll``: an epoll set of its own,
    drained without blocking): every ``interval`` seconds (the load client), or, with
    ``interval=None``, whenever one of them holds a datagram (the SFU: the epoll set's
    own descriptor is the one the event loop waits on, so that one wake-up and one
    Python call serve every socket that became readable meanwhile, and nothing waits for
    a timer).

    On each readiness event asyncio would wake the event loop, call the transport's read
    and the protocol: for a load client holding hundreds of sockets, each receiving a few
    hundred packets a second, those wake-ups and calls cost more than the packets
    themselves.  Here the sockets leave asyncio's selector; a timer drains them, the
    packets of routed tracks are counted in C with the kernel's arrival times, and what
    Python must see (a packet of a track not routed yet, STUN, DTLS) is handed to the
    connection's path one datagram at a time.  One poller per event loop.

    A registration belongs to the receiver, not to a descriptor number: the C side
    registers (and reads) a duplicate of the socket's descriptor that the receiver owns,
    with the receiver as epoll's ``data.ptr``, so removing it never touches another
    socket that was given the same number after aioice closed this one.  A socket leaves
    the set when its transport loses its connection (the protocol's ``connection_lost``,
    before asyncio closes it), and a sweep every :attr:`SWEEP_INTERVAL` seconds removes
    any whose socket was closed otherwise.
    """

    #: Seconds between two checks for sockets closed behind the poller's back.
    SWEEP_INTERVAL = 1.0
    #: Seconds over which a readiness-driven poller with ``busy_tick`` compares its
    #: wake-ups with its tick.
    MODE_WINDOW = 0.1

    def __init__(self, interval: float | None = 1 / 300, busy_tick: float | None = None) -> None:
        """``busy_tick`` (with ``interval=None``): while the sockets wake the loop more
        than once per ``busy_tick`` seconds (over :attr:`MODE_WINDOW`), read them every
        ``busy_tick`` seconds instead, until most ticks find nothing.  Each wake-up of the
        event loop costs far more than a datagram; under load this keeps them at one per
        tick, at the price of at most ``busy_tick`` of added delay."""
        if not FASTRECEIVE:
            raise RuntimeError("the compiled module (sfu._fastpath) is not built")
        self.interval = interval
        self.busy_tick = busy_tick if busy_tick and busy_tick > 0 else None
        #: Reading on the busy tick now (else on readiness).
        self.ticking = False
        #: Times the poller went from readiness to the busy tick.
        self.busy_periods = 0
        self._busy_timer: asyncio.TimerHandle | None = None
        self._window_at = 0.0
        self._wakeups = 0
        self._ticks = 0
        self._busy_ticks = 0
        self._busy_next = 0.0
        #: The loop waiting on the epoll set (``interval=None``), once a socket is read.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller = NATIVE.ffi.new("caucus_poller *")
        if NATIVE.lib.caucus_poller_open(self._poller) < 0:
            raise OSError("epoll_create1 failed")
        #: Closes the epoll set once: on :meth:`close`, or when the poller is collected.
        self._close_epoll = weakref.finalize(self, os.close, self._poller.epfd)
        #: receiver address -> what the poller keeps for it
        self._attached: dict[int, _Attached] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0
        self._sweep_at = 0.0

    @property
    def polls(self) -> int:
        return int(self._poller.polls)

    @property
    def datagrams(self) -> int:
        return int(self._poller.datagrams)

    def attach(
        self,
        transport: Any,
        sock: socket.socket,
        rx: Any,
        handler: Callable[[int], None],
        owner: Any = None,
    ) -> None:
        """Read ``sock`` (the asyncio datagram ``transport``'s) here from now on; ``owner``
        is kept as long as the socket is read (see :class:`_Attached`)."""
        fd = sock.fileno()
        rx.fd = fd
        error = NATIVE.lib.caucus_poller_add(self._poller, rx)
        if error:
            logger.warning("socket left to asyncio", extra={"errno": -error})
            return
        self._attached[address_of(rx)] = _Attached(rx, transport, sock, handler, owner)
        stop_reading(transport, fd)
        protocol = transport.get_protocol()
        lost = protocol.connection_lost
        ref = weakref.ref(self)

        def connection_lost(exc: Exception | None) -> None:
            poller = ref()
            if poller is not None:
                poller.detach_all([rx])  # before asyncio closes the socket
            lost(exc)

        try:
            protocol.connection_lost = connection_lost
        except AttributeError:  # a protocol with __slots__: the sweep finds it closed
            pass
        if self._timer is None:
            loop = transport_loop(transport)
            if self.interval is None:
                self._loop = loop
                loop.add_reader(self._poller.epfd, self._ready)
                self._window_at = loop.time()
                self._timer = loop.call_at(self._next_sweep(loop), self._sweep_tick, loop)
            else:
                self._next = loop.time() + self.interval
                self._sweep_at = self._next + self.SWEEP_INTERVAL
                self._timer = loop.call_at(self._next, self._tick, loop)

    def detach_all(self, receivers: Iterable[Any]) -> None:
        """Give the sockets of ``receivers`` back to asyncio (if they are still open)."""
        for rx in receivers:
            entry = self._attached.pop(address_of(rx), None)
            NATIVE.lib.caucus_poller_remove(self._poller, rx)  # closes its duplicate
            if entry is None:
                continue
            fd = entry.sock.fileno()
            if fd != -1 and not entry.transport.is_closing():
                rx.fd = fd  # the event-driven path reads it again
                resume_reading(entry.transport, fd)
            else:
                rx.fd = -1  # closed, or about to be: its number may soon be another's
        if not self._attached and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            if self._busy_timer is not None:
                self._busy_timer.cancel()
                self._busy_timer = None
            self.ticking = False
            if self._loop is not None:
                self._loop.remove_reader(self._poller.epfd)
                self._loop = None

    def poll(self) -> None:
        """Drain every socket that holds datagrams now."""
        poller = self._poller
        result = _poll(poller, 1)
        while result:
            entry = self._attached.get(address_of(poller.current))
            if entry is not None:
                try:
                    entry.handler(result)
                except Exception:
                    logger.exception("receive handler failed")
            result = _poll(poller, 0)

    def _ready(self) -> None:
        """The epoll set is readable: drain it; count the wake-up (see ``busy_tick``)."""
        self.poll()
        tick = self.busy_tick
        loop = self._loop
        if tick is None or loop is None:
            return
        self._wakeups += 1
        now = loop.time()
        elapsed = now - self._window_at
        if elapsed < self.MODE_WINDOW:
            return
        busy = self._wakeups * tick > elapsed
        self._wakeups = 0
        self._window_at = now
        if busy:
            loop.remove_reader(self._poller.epfd)
            self.ticking = True
            self.busy_periods += 1
            self._ticks = self._busy_ticks = 0
            self._busy_next = now + tick
            self._busy_timer = loop.call_at(self._busy_next, self._busy_tick)

    def _busy_tick(self) -> None:
        before = self._poller.datagrams
        self.poll()
        loop = self._loop
        tick = self.busy_tick
        if loop is None or tick is None or not self.ticking:
            return  # the last socket was detached meanwhile
        self._ticks += 1
        if self._poller.datagrams != before:
            self._busy_ticks += 1
        now = loop.time()
        if now - self._window_at >= self.MODE_WINDOW:
            if 2 * self._busy_ticks < self._ticks:  # mostly idle: back to readiness
                self.ticking = False
                self._busy_timer = None
                self._wakeups = 0
                self._window_at = now
                loop.add_reader(self._poller.epfd, self._ready)
                return
            self._ticks = self._busy_ticks = 0
            self._window_at = now
        self._busy_next += tick
        if self._busy_next < now:
            self._busy_next = now + tick
        self._busy_timer = loop.call_at(self._busy_next, self._busy_tick)

    def sweep(self) -> None:
        """Remove the sockets closed without their transport losing its connection."""
        closed = [
            entry.rx
            for entry in self._attached.values()
            if entry.sock.fileno() == -1 or entry.transport.is_closing()
        ]
        if closed:
            self.detach_all(closed)

    def _sweep_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sweep()
        if self._timer is not None:
            self._timer = loop.call_at(self._next_sweep(loop), self._sweep_tick, loop)

    def _next_sweep(self, loop: asyncio.AbstractEventLoop) -> float:
        """The whole multiple of :attr:`SWEEP_INTERVAL` on the loop's clock after the
        nearest one (a timer may run a hair before its deadline): the sweep then runs in
        the same wake-up as the worker's jobs of the same period (``sfu.worker.Every``)."""
        return (round(loop.time() / self.SWEEP_INTERVAL) + 1) * self.SWEEP_INTERVAL

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.poll()
        if self._timer is None:
            return  # the last socket was detached while polling
        now = loop.time()
        if now >= self._sweep_at:
            self._sweep_at = now + self.SWEEP_INTERVAL
            self.sweep()
            if self._timer is None:
                return
        interval = self.interval or self.SWEEP_INTERVAL
        self._next += interval
        if self._next < now:
            self._next = now + interval
        self._timer = loop.call_at(self._next, self._tick, loop)

    def close(self) -> None:
        """Give every socket back to asyncio and close the epoll set."""
        self.detach_all([entry.rx for entry in list(self._attached.values())])
        self._close_epoll()
        self._poller.epfd = -1
