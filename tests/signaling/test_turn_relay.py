"""coturn, configured from docs/deploy/turnserver.conf, accepts the TURN credentials Caucus
mints and relays with them; it refuses a wrong password and an expired credential, and a
credential stops working when it says it expires.  (The browser through the relay:
tests/browser/test_turn_relay.py.)"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aioice import stun, turn
from pydantic import SecretStr

from signaling.realtime.ice_servers import TurnCredential, TurnCredentials
from tests.support.coturn import Coturn, running_coturn
from tests.support.eventually import eventually


@pytest_asyncio.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with running_coturn(tmp_path / "coturn", secrets.token_urlsafe(24)) as running:
        yield running


class _Received(asyncio.DatagramProtocol):
    """Collects the datagrams an endpoint receives."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr))


async def allocate(coturn: Coturn, credential: TurnCredential, transport: str = "udp"):
    """A TURN allocation on ``coturn`` with ``credential`` (aioice's TURN client)."""
    return await turn.create_turn_endpoint(
        _Received,
        coturn.address,
        credential.username,
        credential.password,
        transport=transport,
    )


def minter(coturn: Coturn, lifetime: int = 3600, clock=time.time) -> TurnCredentials:
    return TurnCredentials(coturn.urls, SecretStr(coturn.secret), lifetime, clock=clock)


async def refused_with(coturn: Coturn, credential: TurnCredential) -> int:
    with pytest.raises(stun.TransactionFailed) as refusal:
        relay, _ = await allocate(coturn, credential)
        relay.close()
    return refusal.value.response.attributes["ERROR-CODE"][0]


async def refused_soon(coturn: Coturn, credential: TurnCredential, within: float) -> int:
    """The error code of the first refused allocation with ``credential``, trying again
    while coturn still takes it, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            relay, _ = await allocate(coturn, credential)
        except stun.TransactionFailed as refusal:
            return refusal.response.attributes["ERROR-CODE"][0]
        relay.close()
        if time.monotonic() >= deadline:
            raise AssertionError(f"coturn still took {credential.username} {within} s on")
        await asyncio.sleep(0.2)  # pacing the attempts, not a wait for a result


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_minted_credential_allocates_a_relay_that_carries_datagrams(
    coturn: Coturn, transport: str
) -> None:
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(
        _Received, local_addr=("127.0.0.1", 0)
    )
    relay, relayed = await allocate(coturn, minter(coturn).mint("u42"), transport)
    try:
        relay.sendto(b"through the relay", peer_transport.get_extra_info("sockname"))
        await eventually(lambda: peer.datagrams, what="the peer receives the relayed datagram")
        data, source = peer.datagrams[0]
        assert data == b"through the relay"
        assert source[0] == "127.0.0.1" and source[1] != coturn.port  # a relay port
        peer_transport.sendto(b"and back", source)
        await eventually(lambda: relayed.datagrams, what="the client receives the answer")
        assert relayed.datagrams[0][0] == b"and back"
    finally:
        relay.close()
        peer_transport.close()


async def test_a_wrong_password_is_refused(coturn: Coturn) -> None:
    forged = TurnCredentials(coturn.urls, SecretStr("not-the-shared-secret-at-all"), 3600)
    assert await refused_with(coturn, forged.mint("u42")) == 401
    # the right expiry and user with another user's password
    good = minter(coturn)
    mine, theirs = good.mint("u42"), good.mint("u43")
    assert await refused_with(coturn, TurnCredential(mine.username, theirs.password, 0)) == 401


async def test_an_expired_credential_is_refused(coturn: Coturn) -> None:
    an_hour_ago = time.time() - 3600
    expired = minter(coturn, lifetime=60, clock=lambda: an_hour_ago).mint("u42")
    assert expired.expires_at < time.time()
    assert await refused_with(coturn, expired) == 401


async def test_a_credential_works_until_it_expires(coturn: Coturn) -> None:
    """A credential bounds when a relay can be allocated (joining, rejoining); an
    allocation made in time keeps working after it (a call is not cut mid-way)."""
    credential = minter(coturn, lifetime=2).mint("u42")
    relay, _ = await allocate(coturn, credential)
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(
        _Received, local_addr=("127.0.0.1", 0)
    )
    try:
        assert time.time() < credential.expires_at
        # coturn compares the username's timestamp with its clock in whole seconds, and
        # its clock is the one its event loop last read (up to a second behind): once
        # expired, an allocation is refused within a couple of seconds
        await eventually(lambda: time.time() >= credential.expires_at + 1, within=10)
        refusal = await refused_soon(coturn, credential, within=5)
        assert refusal == 401
        assert f"Cannot find credentials of user <{credential.username}>" in coturn.log()
        # the allocation made in time still gets permissions for new peers and relays
        relay.sendto(b"after expiry", peer_transport.get_extra_info("sockname"))
        await eventually(lambda: peer.datagrams, what="the older allocation still relays")
        assert peer.datagrams[0][0] == b"after expiry"
    finally:
        relay.close()
        peer_transport.close()
