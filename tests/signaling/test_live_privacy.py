"""Nobody receives media from a live room they are not in: six headless participants whose
every RTP packet names its publisher, 50 random moves among three rooms, every received
packet checked against the receiver's room at the moment it arrives.

The boundary: a receiver is *told* of a move when it takes the ``live.state`` push into
account.  Before doing so it handles the datagrams that had already reached its socket
(``drain_received``): they arrived before the message, so they may still come from the old
room.  Any packet of the old room handled after that is a failure; so is any packet from a
room the receiver is in neither before nor after the move in flight.  Independently, the
SFU's own subscription table must match the rooms exactly as soon as each move returns."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from client import SocketSignal
from client.identity import IdentifiedParticipant, small_clip
from signaling.media import MediaNamespace
from signaling.sockets import NAMESPACES
from tests.signaling.conftest import PASSWORD, World

MOVES = 50


@dataclass
class Receiver:
    """One participant as the check sees it: what it was told, what it received."""

    name: str
    signal: SocketSignal
    user_of: dict[str, str]  # publisher name -> user id (filled once everyone joined)
    failures: list[str]
    person: IdentifiedParticipant | None = None
    #: (version, mates) of a move in flight that this receiver has not been told of yet
    pending: tuple[int, set[str]] | None = None
    seen: set[str] = field(default_factory=set)  # publishers since the last state
    packets: int = 0

    def mates(self) -> set[str]:
        room = self.signal.my_room()
        return {p["user_id"] for p in room["occupants"]} if room else set()

    def told(self, view: dict[str, Any]) -> None:
        if self.pending is not None and view["version"] >= self.pending[0]:
            self.pending = None
        self.seen.clear()

    def on_packet(self, kind: str, publisher: str | None, mid: str) -> None:
        if publisher is None:
            return  # padding carries no media
        self.packets += 1
        user = self.user_of.get(publisher)
        if user is None:
            self.failures.append(f"{self.name} received {kind} of unknown {publisher!r}")
            return
        allowed = self.mates()
        if self.pending is not None:
            # the server moved people and has not told this receiver yet: the new room's
            # media may already arrive; the old room's is allowed until it is told
            allowed |= self.pending[1]
        if user not in allowed:
            self.failures.append(
                f"{self.name} in {self.signal.live['you']['room_id']} (version "
                f"{self.signal.live['version']}, pending {self.pending}) received {kind} "
                f"(mid {mid}) from {publisher} at {time.monotonic():.3f}"
            )
        else:
            self.seen.add(user)


def media_namespace(world: World) -> MediaNamespace:
    return next(n for n in world.server.app[NAMESPACES] if isinstance(n, MediaNamespace))


async def test_no_packet_from_another_room_during_random_moves(world: World) -> None:
    case_a = world.cases["Case A"]
    for name in ("pia", "quinn", "rosa"):
        await world.accept(await world.invite("nina", case_a, "party"), name)
    names = ["nina", "paula", "carl", "pia", "quinn", "rosa"]
    clip = small_clip()
    user_of: dict[str, str] = {}
    failures: list[str] = []
    receivers: dict[str, Receiver] = {}
    for name in names:
        signal = SocketSignal(world.server.url, name, PASSWORD, case_a, insecure=True)
        receiver = receivers[name] = Receiver(name, signal, user_of, failures)
        signal.on_live_state = receiver.told
        receiver.person = person = IdentifiedParticipant(name, signal, clip, receiver.on_packet)
        signal.before_live_state = person.drain_received
    namespace = media_namespace(world)
    worker = namespace.worker
    rng = random.Random(20261125)
    try:
        for receiver in receivers.values():
            await receiver.person.join()
            user_of[receiver.name] = receiver.signal.live["you"]["user_id"]
        name_of = {user: name for name, user in user_of.items()}
        everyone = set(user_of.values())
        async with asyncio.timeout(60):
            for receiver in receivers.values():
                await receiver.person.wait_until(
                    lambda p, r=receiver: r.seen >= everyone - {user_of[r.name]}
                )
        mediator = receivers["nina"].signal
        rooms = ["main"]
        for room_name in ("A", "B"):
            rooms.append(
                (await mediator.call("live.room.create", _room(case_a, room_name)))["room_id"]
            )
        placement = {user: "main" for user in everyone}

        async def synced(version: int) -> None:
            async with asyncio.timeout(15):
                for receiver in receivers.values():
                    await receiver.signal.wait_until(
                        lambda s, v=version: s.live.get("version", 0) >= v
                    )

        await synced((await namespace.rooms_state.load(case_a)).version)
        moved_total = 0
        for step in range(MOVES):
            before = dict(placement)
            kind = rng.choice(("move", "move", "move", "swap", "move_many"))
            if kind == "move":
                user = rng.choice(sorted(everyone))
                target = rng.choice([r for r in rooms if r != placement[user]])
                placement[user] = target
                event, body = "live.move", {"user_id": user, "room_id": target}
            elif kind == "swap":
                first, second = rng.sample(sorted(everyone), 2)
                placement[first], placement[second] = placement[second], placement[first]
                event, body = "live.swap", {"first": first, "second": second}
            else:
                chosen = rng.sample(sorted(everyone), 3)
                moves = {user: rng.choice(rooms) for user in chosen}
                placement.update(moves)
                event, body = "live.move_many", {"moves": moves}
            version = (await namespace.rooms_state.load(case_a)).version + 1
            for receiver in receivers.values():
                me = user_of[receiver.name]
                mates = {u for u, r in placement.items() if r == placement[me]}
                receiver.pending = (version, mates)
            await mediator.call(event, {"case_id": case_a, **body})
            # the SFU's own table, right after the move returned: exactly the same-room pairs
            table = {
                (
                    namespace.by_participant[row["subscriber"]].user_id,
                    namespace.by_participant[row["publisher"]].user_id,
                    row["kind"],
                )
                for row in worker.subscriptions()
            }
            expected = {
                (sub, pub, kind)
                for sub in everyone
                for pub in everyone
                for kind in ("audio", "video")
                if sub != pub and placement[sub] == placement[pub]
            }
            assert table == expected, f"step {step}: {table ^ expected}"
            await synced(version)
            for receiver in receivers.values():
                assert receiver.pending is None
                me = user_of[receiver.name]
                assert receiver.mates() == {
                    u for u, r in placement.items() if r == placement[me]
                }, (step, receiver.name, receiver.signal.live, placement)
            # media flows again in the new rooms before the next move
            changed = {u for u in everyone if before[u] != placement[u]}
            moved_total += len(changed)
            async with asyncio.timeout(20):
                for user in changed:
                    receiver = receivers[name_of[user]]
                    mates = receiver.mates() - {user}
                    await receiver.person.wait_until(
                        lambda p, r=receiver, m=mates: not m or bool(r.seen & m)
                    )
        assert not failures, failures[:10]
        assert moved_total >= MOVES
        assert sum(r.packets for r in receivers.values()) > 5000
        # slots were reused: nobody's subscribe connection grew with the moves
        for transport in worker.transports:
            if transport.direction == "subscribe":
                assert len(transport.consumers) <= 2 * (len(names) - 1)
    finally:
        for receiver in receivers.values():
            if receiver.person is not None:
                await receiver.person.close()


def _room(case_id: str, name: str) -> dict[str, str]:
    return {"case_id": case_id, "name": name}
