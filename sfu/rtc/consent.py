"""ICE consent freshness (RFC 7675) that counts late answers: :func:`keep_consent`
replaces aioice's check on each connection."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from aioice import stun
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCPeerConnection

from .internals import ice_connection, nominated_pairs

logger = logging.getLogger(__name__)


def keep_consent(pc: RTCPeerConnection, interval: float, expiry: float) -> None:
    """Check consent to send (RFC 7675) on ``pc``'s ICE connections without losing late answers.

    aioice's own check is one request with a 0.5 s timeout and no retransmission; six
    unanswered checks in a row close the connection.  Its answer, though, waits in the
    pair's socket behind every datagram received before it: on a publish connection under
    CPU load the SFU can be seconds behind on incoming media, every answer then arrives
    after its request has been forgotten, and a connection carrying media is closed ~30 s
    after it was established.  RFC 7675 counts an answer to any request of the last
    ``expiry`` seconds: here a request is sent every ``interval`` seconds (randomised by
    ±20 %), its answer is accepted for ``expiry`` seconds, and consent expires (the
    connection closes) only when no authenticated answer from the pair's remote address
    arrived for ``expiry`` seconds.  Call before ICE completes; later calls do nothing.
    """
    for transceiver in pc.getTransceivers():
        connection = ice_connection(transceiver.receiver.transport.transport)
        if not isinstance(connection.__dict__.get("query_consent"), _ConsentCheck):
            connection.query_consent = _ConsentCheck(  # type: ignore[method-assign]  # per instance
                connection, interval, expiry
            )


class _ConsentCheck:
    """``Connection.query_consent`` replacement; see :func:`keep_consent`."""

    def __init__(self, connection: Connection, interval: float, expiry: float) -> None:
        self._connection = connection
        self._interval = interval
        self._expiry = expiry
        #: Outstanding requests: transaction id -> (sent at, protocol, pair).
        self._sent: dict[bytes, tuple[float, StunProtocol, CandidatePair]] = {}
        self._closing: asyncio.Future[None] | None = None
        self.last_answer = 0.0
        self.requests = 0
        self.answers = 0

    async def __call__(self) -> None:
        connection = self._connection
        self.last_answer = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self._interval * (0.8 + 0.4 * random.random()))
                now = time.monotonic()
                self._forget(now - self._expiry)
                if now - self.last_answer >= self._expiry:
                    logger.info(
                        "consent to send expired: %d requests, last answer %.1f s ago",
                        self.requests,
                        now - self.last_answer,
                    )
                    break
                key = (connection.remote_password or "").encode("utf8")
                for pair in nominated_pairs(connection):
                    request = connection.build_request(pair, nominate=False)
                    request.add_message_integrity(key)
                    protocol = pair.protocol
                    protocol.transactions[request.transaction_id] = _ConsentAnswer(self)  # type: ignore[assignment]  # only response_received is called
                    self._sent[request.transaction_id] = (now, protocol, pair)
                    self.requests += 1
                    try:
                        protocol.send_stun(request, pair.remote_addr)
                    except (AttributeError, OSError):
                        pass  # socket closing; the next round (or close()) settles it
        finally:
            self._forget(float("inf"))
        # as aioice does on expiry; close() cancels this task, which has finished by then
        self._closing = asyncio.ensure_future(connection.close())

    def answered(self, transaction_id: bytes, message: stun.Message, addr: tuple) -> None:
        sent = self._sent.get(transaction_id)
        if sent is None or message.message_class != stun.Class.RESPONSE:
            return
        pair = sent[2]
        if tuple(addr[:2]) != tuple(pair.remote_addr):
            return
        password = self._connection.remote_password or ""
        if not message.check_message_integrity(password.encode("utf8")):
            return
        self.answers += 1
        self.last_answer = time.monotonic()
        self._sent.pop(transaction_id, None)
        sent[1].transactions.pop(transaction_id, None)

    def _forget(self, before: float) -> None:
        for transaction_id, (sent_at, protocol, _pair) in list(self._sent.items()):
            if sent_at <= before:
                del self._sent[transaction_id]
                protocol.transactions.pop(transaction_id, None)


class _ConsentAnswer:
    """Stands in ``StunProtocol.transactions`` for one consent request."""

    __slots__ = ("_check",)

    def __init__(self, check: _ConsentCheck) -> None:
        self._check = check

    def response_received(self, message: stun.Message, addr: tuple) -> None:
        self._check.answered(message.transaction_id, message, addr)


def consent_stats(pc: RTCPeerConnection) -> tuple[int, int] | None:
    """(requests sent, answers accepted) by :func:`keep_consent` on ``pc``'s first ICE
    connection, or ``None`` when it is not installed."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    connection = ice_connection(transceivers[0].receiver.transport.transport)
    check = connection.__dict__.get("query_consent")
    return (check.requests, check.answers) if isinstance(check, _ConsentCheck) else None
