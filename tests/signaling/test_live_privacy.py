"""Nobody receives media from a live room they are not in: six headless participants whose
every RTP packet names its publisher, 50 random moves among three rooms, every received
packet checked against the room its receiver was in when the SFU sent it.

The boundary is exact, on the media path itself: a subscribe m-line keeps continuous
rewritten sequence numbers when the SFU gives it to another track, and every
``media.offer``/``media.tracks`` says from which sequence number on (``first_seq``) each
m-line carries what it lists.  A packet is attributed by (mid, sequence number) to the
assignment in force when it was sent, whenever it arrives.  After each move, once every
receiver was told of it: each m-line's newest assignment must carry somebody of the
receiver's room now, and each packet received so far must come from the participant its
assignment names (none on a parked m-line), an assignment that was verified as the newest
at an earlier step, when it carried somebody of the receiver's room then.  Independently,
the SFU's own subscription table must match the rooms exactly as soon as each move
returns."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from client import SocketSignal
from client.identity import IdentifiedParticipant, small_clip
from client.slots import Assignment
from signaling.http.state import NAMESPACES
from signaling.realtime.namespaces.media import MediaNamespace
from tests.support.world import PASSWORD, World

MOVES = 50


@dataclass
class Receiver:
    """One participant as the check sees it: what it was told, what it received."""

    name: str
    signal: SocketSignal
    user_of: dict[str, str]  # publisher name -> user id (filled once everyone joined)
    name_of: dict[str, str]  # participant id -> publisher name (likewise)
    failures: list[str]
    person: IdentifiedParticipant | None = None
    #: (kind, publisher name, mid, sequence number) received and not checked yet
    unchecked: list[tuple[str, str, str, int]] = field(default_factory=list)
    #: who may be heard now, and before the move in flight (the test's own model)
    mates_now: set[str] = field(default_factory=set)
    mates_before: set[str] = field(default_factory=set)
    step: int = -1
    #: publishers heard on m-lines' newest assignments since the move in flight
    fresh: set[str] = field(default_factory=set)
    packets: int = 0
    checked: int = 0
    #: packets that arrived after the track map announcing their m-line's next assignment
    late: int = 0

    def on_packet(self, kind: str, publisher: str | None, mid: str, seq: int) -> None:
        if publisher is None:
            return  # padding carries no media
        self.packets += 1
        self.unchecked.append((kind, publisher, mid, seq))
        slots = self.signal.slots
        assignment = slots.assignment(mid, seq)
        if assignment is not None and assignment is not slots.latest(mid):
            self.late += 1

    def mates(self) -> set[str]:
        room = self.signal.my_room()
        return {p["user_id"] for p in room["occupants"]} if room else set()

    def moving(self, step: int, before: set[str], after: set[str]) -> None:
        """The move ``step`` is about to be sent: ``before`` and ``after`` are the users in
        this receiver's room before and after it."""
        self.step, self.mates_before, self.mates_now = step, before, after
        self.fresh.clear()

    def _owner(self, assignment: Assignment) -> str:
        return self.name_of.get(assignment.participant_id or "", "?")

    def check(self) -> None:
        """Verify the m-lines' newest assignments against the room now, then attribute every
        packet received so far (call once the receiver was told of the move in flight)."""
        newest = self.signal.slots.newest()
        for assignment in newest.values():
            if assignment.track is None:
                continue
            owner = self._owner(assignment)
            allowed = self.user_of.get(owner) in self.mates_now
            assignment.notes["allowed"] = assignment.notes.get("allowed", True) and allowed
            if not allowed:
                self.failures.append(
                    f"step {self.step}: {self.name}'s mid {assignment.mid} carries {owner} "
                    f"(from sequence number {assignment.first}), who is not in the room"
                )
        unchecked, self.unchecked = self.unchecked, []
        for kind, publisher, mid, seq in unchecked:
            self.checked += 1
            assignment = self.signal.slots.assignment(mid, seq)
            where = f"step {self.step}: {self.name} received {kind} from {publisher} (mid {mid}"
            if assignment is None:
                self.failures.append(f"{where}, seq {seq}) before any assignment of the m-line")
                continue
            if assignment.track is None:
                self.failures.append(
                    f"{where}, seq {seq}) on a parked m-line (parked from {assignment.first})"
                )
                continue
            owner = self._owner(assignment)
            if publisher != owner:
                self.failures.append(
                    f"{where}, seq {seq}) while the m-line carried {owner} from {assignment.first}"
                )
                continue
            if "allowed" not in assignment.notes:
                # announced and superseded within this step: it may only carry somebody of
                # the room before or after the move in flight
                allowed = self.user_of[publisher] in self.mates_before | self.mates_now
                assignment.notes["allowed"] = allowed
            if not assignment.notes["allowed"]:
                self.failures.append(f"{where}, seq {seq}), who was not in the room")
            elif newest.get(mid) is assignment:
                self.fresh.add(self.user_of[publisher])

    def hears_any(self, users: set[str]) -> bool:
        self.check()
        return not users or bool(self.fresh & users)


def media_namespace(world: World) -> MediaNamespace:
    return next(n for n in world.server.app[NAMESPACES] if isinstance(n, MediaNamespace))


async def test_no_packet_from_another_room_during_random_moves(world: World) -> None:
    case_a = world.cases["Case A"]
    for name in ("pia", "quinn", "rosa"):
        await world.accept(await world.invite("nina", case_a, "party"), name)
    names = ["nina", "paula", "carl", "pia", "quinn", "rosa"]
    clip = small_clip()
    user_of: dict[str, str] = {}
    name_of_participant: dict[str, str] = {}
    failures: list[str] = []
    receivers: dict[str, Receiver] = {}
    for name in names:
        signal = SocketSignal(world.server.url, name, PASSWORD, case_a, insecure=True)
        receiver = Receiver(name, signal, user_of, name_of_participant, failures)
        receiver.person = IdentifiedParticipant(name, signal, clip, receiver.on_packet)
        receivers[name] = receiver
    namespace = media_namespace(world)
    worker = namespace.worker
    rng = random.Random(20261125)
    try:
        for receiver in receivers.values():
            await receiver.person.join()
            user_of[receiver.name] = receiver.signal.live["you"]["user_id"]
            name_of_participant[receiver.signal.participant_id] = receiver.name
        name_of = {user: name for name, user in user_of.items()}
        everyone = set(user_of.values())
        for receiver in receivers.values():
            receiver.moving(-1, everyone, everyone)  # everybody starts in the main room
        async with asyncio.timeout(60):
            for receiver in receivers.values():
                others = everyone - {user_of[receiver.name]}
                await receiver.person.wait_until(
                    lambda p, r=receiver, o=others: r.hears_any(o) and r.fresh >= o
                )
        mediator = receivers["nina"].signal
        rooms = ["main"]
        for room_name in ("A", "B"):
            rooms.append(
                (await mediator.call("live.room.create", _room(case_a, room_name)))["room_id"]
            )
        placement = {user: "main" for user in everyone}

        def mates(where: dict[str, str], user: str) -> set[str]:
            return {u for u, room in where.items() if room == where[user]}

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
                receiver.moving(step, mates(before, me), mates(placement, me))
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
            ended = {r.name: r.signal.ended for r in receivers.values() if r.signal.ended}
            assert table == expected, f"step {step}: {table ^ expected}, ended: {ended}"
            await synced(version)
            for receiver in receivers.values():
                receiver.check()  # told of the move: every track map of it has arrived
                me = user_of[receiver.name]
                assert receiver.mates() == mates(placement, me), (
                    step,
                    receiver.name,
                    receiver.signal.live,
                    placement,
                )
            # media flows again in the new rooms before the next move
            changed = {u for u in everyone if before[u] != placement[u]}
            moved_total += len(changed)
            async with asyncio.timeout(20):
                for user in changed:
                    receiver = receivers[name_of[user]]
                    others = receiver.mates_now - {user}
                    await receiver.person.wait_until(lambda p, r=receiver, o=others: r.hears_any(o))
        for receiver in receivers.values():
            receiver.check()
        assert not failures, failures[:10]
        assert moved_total >= MOVES
        # every packet received was attributed and checked
        assert sum(r.checked for r in receivers.values()) == sum(
            r.packets for r in receivers.values()
        )
        # m-lines were handed from one participant to another (and parked in between)
        handed_over = [
            (r.name, mid)
            for r in receivers.values()
            for mid in r.signal.slots.mids()
            if len({a.participant_id for a in r.signal.slots.history(mid)} - {None}) > 1
        ]
        assert handed_over
        print(
            f"packets {sum(r.packets for r in receivers.values())}, arrived after the track "
            f"map of their m-line's next assignment {sum(r.late for r in receivers.values())}"
            f", m-lines handed over {len(handed_over)}"
        )
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
