"""Scale-out with real processes: media worker processes behind signaling nodes.

* Two signaling nodes with one worker each, sharing the database, the data directory and
  Redis: participants connected to different nodes are in one live room and receive each
  other; the mediator on node 1 moves participants connected to node 2 and their media
  follows.
* A worker killed with SIGKILL during a four-person session: every participant decodes
  video again within 5 s, in the room it was in.
* A signaling node killed with SIGKILL (its worker goes with it): its clients reconnect
  to the other node, and everyone is back in their room.
* ``caucus drain --now`` moves a live case off a node: its people land on the other
  node's worker, in their rooms.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from client import Participant, SignalError, SocketSignal
from client.loadtest_setup import ApiSession
from sfu.rtc import native_paths
from signaling.cookies import SESSION_COOKIE
from tests.signaling.cluster_nodes import (
    CLUSTER_SECRET,
    Node,
    caucus_command,
    media_stats,
    one_case,
    people_in,
    running_nodes,
)
from tests.support.eventually import eventually

REDIS_URL = os.environ.get("CAUCUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Each test's cluster works in the next of Redis's databases 1-15, not in REDIS_URL's
#: own: a media worker of an earlier test that is still stopping (a worker lives on for a
#: moment after its node) stays registered in its test's database, where no case of
#: this test is placed on it (it would be served against the earlier test's database).
_DATABASES = itertools.cycle(range(1, 16))


def fresh_redis_url() -> str:
    """:data:`REDIS_URL` on the next database of :data:`_DATABASES`."""
    parts = urllib.parse.urlsplit(REDIS_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{next(_DATABASES)}"))


RECOVERY_SECONDS = 5.0  # the promise to people in a session when a worker dies


def display_names(accounts: dict[str, Any], people: list[Participant]) -> dict[Any, str]:
    """Each person's display name in the case (the neutral's is set by the set-up)."""
    logins = [accounts["neutral"], *accounts["rooms"][0]["accounts"]]
    return {
        person: login.get("display_name", "Load test neutral")
        for person, login in zip(people, logins, strict=True)
    }


def user_id(person: Participant) -> str:
    return person.signal.live["you"]["user_id"]  # type: ignore[attr-defined]


def room_of(person: Participant) -> str | None:
    return person.signal.live.get("you", {}).get("room_id")  # type: ignore[attr-defined]


def senders(person: Participant, kind: str = "video") -> set[str]:
    """Whose ``kind`` tracks the server says ``person`` receives now."""
    tracks = person.signal.tracks.values()  # type: ignore[attr-defined]
    return {t["display_name"] for t in tracks if t["kind"] == kind}


def decoding(person: Participant, since: float) -> set[str]:
    """Whose video ``person`` decoded a frame of after ``since``, on the m-lines the
    server says carry them now (a new connection after a rejoin included)."""
    owners = {
        mid: t["display_name"]
        for mid, t in person.signal.tracks.items()  # type: ignore[attr-defined]
        if t["kind"] == "video"
    }
    return {
        owners[mid]
        for mid, track in person.tracks.items()
        if mid in owners and track.frames_since(since) > 0
    }


async def until(condition, seconds: float, what: str, nodes: list[Node]) -> None:
    """Wait for ``condition()`` (checked as media arrives), failing with the nodes' logs."""
    await eventually(
        condition,
        seconds,
        what=what,
        details=lambda: "\n\n".join(f"--- {n.node_id}\n{n.log()}" for n in nodes),
    )


def same_room_only(stats: dict[str, Any]) -> None:
    """The SFU forwards only within rooms: every subscription joins two ends of a room."""
    assert stats["subscriptions"], "nothing is forwarded"
    for row in stats["subscriptions"]:
        assert row["subscriber_room"] == row["publisher_room"], row


async def breakout(mediator: Participant, case_id: str, moved: list[Participant]) -> str:
    """The mediator opens a breakout room and moves ``moved`` there; its id."""
    room = await mediator.signal.call(  # type: ignore[attr-defined]
        "live.room.create", {"case_id": case_id, "name": "Caucus Q"}
    )
    await mediator.signal.call(  # type: ignore[attr-defined]
        "live.move_many",
        {"case_id": case_id, "moves": {user_id(p): room["room_id"] for p in moved}},
    )
    return room["room_id"]


def everyone_sees_one(people: list[Participant], since: float) -> bool:
    """Each person decodes, since ``since``, the one other person of their room."""
    return all(len(senders(p)) == 1 and decoding(p, since) == senders(p) for p in people)


def back_after(people: list[Participant], at: float) -> bool:
    """Everyone joined again after ``at`` and sees the other person of their room."""
    rejoined = all(p.rejoined_at is not None and p.rejoined_at > at for p in people)
    return rejoined and everyone_sees_one(people, at)


async def in_two_rooms(
    people: list[Participant], case_id: str, nodes: list[Node]
) -> dict[str, str | None]:
    """The mediator and the second party stay in the main room, the first and third party
    go to a breakout room; once everyone decodes the other person of their room, where
    each person is."""
    mediator, paula, _carl, dora = people
    room_id = await breakout(mediator, case_id, [paula, dora])
    settled = time.monotonic()
    await until(
        lambda: room_of(paula) == room_id == room_of(dora) and everyone_sees_one(people, settled),
        60,
        "everyone decodes the one other person in their room",
        nodes,
    )
    return {p.id: room_of(p) for p in people}


async def test_two_nodes_share_a_room_and_the_mediator_moves_people_across_nodes(
    tmp_path: Path,
) -> None:
    async with running_nodes(
        tmp_path / "data", ("n1", "n2"), workers=1, redis_url=fresh_redis_url()
    ) as nodes:
        node1, node2 = nodes
        accounts = await one_case(node1, 3)
        case_id = accounts["rooms"][0]["case_id"]
        async with people_in(nodes, accounts) as people:
            mediator, paula, carl, dora = people  # n1, n2, n1, n2
            await until(
                lambda: all(p.frames_from_all(3, "video") for p in people),
                60,
                "everyone decodes the other three",
                nodes,
            )
            stats = await media_stats(node2)
            assert {w["node"] for w in stats["workers"]} == {"n1", "n2"}
            hosting = [w for w in stats["workers"] if w["participants"]]
            assert len(hosting) == 1 and hosting[0]["participants"] == 4
            same_room_only(stats)

            # a party's try at the mediator's controls is refused by its own node
            with pytest.raises(SignalError) as refused:
                await paula.signal.call(  # type: ignore[attr-defined]
                    "live.move", {"case_id": case_id, "user_id": user_id(carl), "room_id": "x"}
                )
            assert refused.value.code == "forbidden"

            # the mediator, on node 1, moves two people connected to node 2
            moved_at = time.monotonic()
            room_id = await breakout(mediator, case_id, [paula, dora])
            names = display_names(accounts, people)
            await until(
                lambda: (
                    room_of(paula) == room_id == room_of(dora)
                    and senders(paula) == {names[dora]}
                    and senders(dora) == {names[paula]}
                    and senders(mediator) == {names[carl]}
                    and senders(carl) == {names[mediator]}
                    and all(decoding(p, moved_at) == senders(p) for p in people)
                ),
                30,
                "the moved people receive each other only, and so do the others",
                nodes,
            )
            stats = await media_stats(node1)
            same_room_only(stats)
            rooms = {row["subscriber_room"] for row in stats["subscriptions"]}
            assert rooms == {f"{case_id}:main", f"{case_id}:{room_id}"}


async def test_a_killed_worker_loses_nobody(tmp_path: Path) -> None:
    async with running_nodes(tmp_path / "data", ("solo",), workers=2, redis_url=None) as nodes:
        (node,) = nodes
        accounts = await one_case(node, 3)
        case_id = accounts["rooms"][0]["case_id"]
        async with people_in(nodes, accounts, rejoin=True) as people:
            paula = people[1]
            before = await in_two_rooms(people, case_id, nodes)
            stats = await media_stats(node)
            hosting = [w for w in stats["workers"] if w["participants"]]
            assert len(hosting) == 1
            pid = hosting[0]["pid"]
            # each worker told the node which compiled paths it uses (/metrics exports it)
            assert stats["native_paths"].keys() == {w["id"] for w in stats["workers"]}
            assert all(paths == native_paths() for paths in stats["native_paths"].values())
            # meanwhile Paula records a video message in a space of the case
            video = await VideoMessage.start(node, accounts, user_id(paula))

            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            await until(
                lambda: back_after(people, killed_at),
                RECOVERY_SECONDS,
                "everyone decodes video again",
                nodes,
            )
            recovered = time.monotonic() - killed_at
            print(f"every participant decoded video again {recovered:.2f} s after the kill")
            # the recording in progress is lost, and its recorder is told so
            ended = await video.ended()
            assert ended["recording_id"] == video.recording_id
            assert ended["status"] == "failed" and ended["reason"] == "media_worker_lost"
            await video.close()
            assert {p.id: room_of(p) for p in people} == before
            stats = await media_stats(node)
            same_room_only(stats)
            assert len(stats["subscriptions"]) == 8  # 4 people x (audio + video)
            # the node started the killed worker again
            await until(lambda: len(node.workers()) == 3, 30, "a new worker", nodes)


async def test_a_dead_signaling_node_loses_nobody(tmp_path: Path) -> None:
    async with running_nodes(
        tmp_path / "data", ("n1", "n2"), workers=1, redis_url=fresh_redis_url()
    ) as nodes:
        accounts = await one_case(nodes[0], 3)
        case_id = accounts["rooms"][0]["case_id"]
        async with people_in(nodes, accounts, rejoin=True) as people:  # n1, n2, n1, n2
            before = await in_two_rooms(people, case_id, nodes)

            killed_at = time.monotonic()
            nodes[0].process.kill()  # SIGKILL: no goodbye to anyone
            await until(
                lambda: back_after(people, killed_at), 30, "everyone is back through node 2", nodes
            )
            print(f"everyone decoded video again {time.monotonic() - killed_at:.2f} s later")
            assert all(p.signal.base_url == nodes[1].url for p in people)  # type: ignore[attr-defined]
            assert {p.id: room_of(p) for p in people} == before

            async def only_node_2_has_workers() -> bool:
                # node 1's worker dies with it (PR_SET_PDEATHSIG) and its registration
                # expires within 4 s; people may be back sooner than that
                stats = await media_stats(nodes[1])
                return {w["node"] for w in stats["workers"]} == {"n2"}

            await until(only_node_2_has_workers, 20, "node 1's worker leaves the directory", nodes)
            stats = await media_stats(nodes[1])
            same_room_only(stats)
            assert len(stats["subscriptions"]) == 8


async def test_drain_moves_a_live_case_to_another_node(tmp_path: Path) -> None:
    redis_url = fresh_redis_url()
    async with running_nodes(
        tmp_path / "data", ("d1", "d2"), workers=1, redis_url=redis_url
    ) as nodes:
        accounts = await one_case(nodes[0], 3)
        case_id = accounts["rooms"][0]["case_id"]
        async with people_in(nodes, accounts, rejoin=True) as people:
            before = await in_two_rooms(people, case_id, nodes)
            stats = await media_stats(nodes[0])
            (hosting,) = [w for w in stats["workers"] if w["participants"]]
            drained = hosting["node"]
            cluster = ["--redis-url", redis_url, "--node-id", drained]

            # mistakes are refused before anything changes
            status, text = await caucus_command(
                "drain", "--redis-url", redis_url, "--node-id", "no-such-node"
            )
            assert status == 1 and "no media worker of node 'no-such-node'" in text, text
            status, text = await caucus_command("drain", *cluster, "--now")
            assert status == 2 and "CAUCUS_CLUSTER_SECRET" in text, text

            drained_at = time.monotonic()
            status, text = await caucus_command(
                "drain", *cluster, "--now", "--wait", env={"CAUCUS_CLUSTER_SECRET": CLUSTER_SECRET}
            )
            assert status == 0, text
            assert f"Node {drained} is draining" in text
            assert text.strip().endswith("0 cases still on its workers"), text

            await until(
                lambda: back_after(people, drained_at),
                30,
                "everyone is back on the other node's worker",
                nodes,
            )
            assert all("moved" in p.signal.endings for p in people)  # type: ignore[attr-defined]
            assert {p.id: room_of(p) for p in people} == before
            stats = await media_stats(nodes[0])
            (hosting,) = [w for w in stats["workers"] if w["participants"]]
            assert hosting["node"] != drained
            same_room_only(stats)

            status, text = await caucus_command("drain", *cluster, "--undo")
            assert status == 0, text
            assert f"Node {drained}: live rooms are placed on its 1 workers again." in text


class VideoMessage:
    """A party recording a video message over ``/recording`` (audio only is enough)."""

    def __init__(self, sio: socketio.AsyncClient, pc: RTCPeerConnection, reply: dict) -> None:
        self.sio = sio
        self.pc = pc
        self.recording_id = reply["recording_id"]
        self._ended: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, node: Node, accounts: dict[str, Any], party_id: str) -> VideoMessage:
        case_id = accounts["rooms"][0]["case_id"]
        neutral = accounts["neutral"]
        async with ApiSession(node.url, insecure=True) as api:
            await api.sign_in(neutral["username"], neutral["password"])
            space = await api.request(
                "POST",
                f"/api/cases/{case_id}/spaces",
                {"name": "Messages to the mediator", "member_ids": [party_id]},
            )
        login = accounts["rooms"][0]["accounts"][0]
        token = await SocketSignal(
            node.url, login["username"], login["password"], case_id, insecure=True
        ).sign_in()
        sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
        await sio.connect(
            node.url,
            headers={"Cookie": f"{SESSION_COOKIE}={token}"},
            namespaces=["/recording"],
            transports=["websocket"],
        )
        pc = RTCPeerConnection()
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        body = {
            "case_id": case_id,
            "space_id": space["space"]["id"],
            "sdp": pc.localDescription.sdp,
        }
        reply = await sio.call("video.start", body, namespace="/recording", timeout=30)
        assert reply["ok"], reply
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        message = cls(sio, pc, reply)

        def ended(outcome: dict) -> None:
            if not message._ended.done():
                message._ended.set_result(outcome)

        sio.on("video.ended", ended, namespace="/recording")
        return message

    async def ended(self) -> dict:
        return await asyncio.wait_for(self._ended, 10)

    async def close(self) -> None:
        await self.pc.close()
        await self.sio.disconnect()


async def test_space_changes_reach_every_node_once_and_removal_cuts_everywhere(
    tmp_path: Path,
) -> None:
    async with running_nodes(
        tmp_path / "data", ("s1", "s2"), workers=0, redis_url=fresh_redis_url()
    ) as nodes:
        node1, node2 = nodes
        accounts = await one_case(node1, 2)
        case_id = accounts["rooms"][0]["case_id"]
        neutral, paula = accounts["neutral"], accounts["rooms"][0]["accounts"][0]
        async with ApiSession(node1.url, insecure=True) as api:
            await api.sign_in(neutral["username"], neutral["password"])
            members = (await api.request("GET", f"/api/cases/{case_id}"))["members"]
            paula_id = next(
                m["user_id"] for m in members if m["display_name"] == paula["display_name"]
            )
            spaces = {}
            for name in ("Joint", "Just Paula"):
                made = await api.request(
                    "POST", f"/api/cases/{case_id}/spaces", {"name": name, "member_ids": [paula_id]}
                )
                spaces[name] = made["space"]["id"]

            # Paula signs in on node 1 and listens to both spaces through node 2
            paula_api = ApiSession(node1.url, insecure=True)
            await paula_api.sign_in(paula["username"], paula["password"])
            token = next(c.value for c in paula_api._http.cookie_jar if c.key == SESSION_COOKIE)
            heard: list[tuple[str, dict]] = []
            arrived = asyncio.Event()

            def hear(name: str):
                def handler(data: dict) -> None:
                    heard.append((name, data))
                    arrived.set()

                return handler

            sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
            for name in ("message.new", "space.removed"):
                sio.on(name, hear(name), namespace="/spaces")
            sio.on("disconnect", hear("disconnect"), namespace="/spaces")
            await sio.connect(
                node2.url,
                headers={"Cookie": f"{SESSION_COOKIE}={token}"},
                namespaces=["/spaces"],
                transports=["websocket"],
            )

            async def heard_of(predicate) -> None:
                async with asyncio.timeout(10):
                    while not any(predicate(name, data) for name, data in heard):
                        arrived.clear()
                        await arrived.wait()

            def body(text: str):
                return lambda name, data: name == "message.new" and data.get("body") == text

            try:
                for space_id in spaces.values():
                    reply = await sio.call(
                        "space.subscribe", {"case_id": case_id, "space_id": space_id}, "/spaces"
                    )
                    assert reply["ok"], reply

                async def post(space: str, text: str) -> None:
                    await api.request(
                        "POST",
                        f"/api/cases/{case_id}/spaces/{spaces[space]}/messages",
                        {"body": text},
                    )

                # posted on node 1, heard once on node 2 (a later message proves no copy)
                await post("Joint", "first")
                await post("Just Paula", "marker one")
                await heard_of(body("marker one"))
                assert sum(1 for n, d in heard if body("first")(n, d)) == 1

                # removed on node 1: node 2 cuts her socket off the space at once
                await api.request(
                    "DELETE", f"/api/cases/{case_id}/spaces/{spaces['Joint']}/members/{paula_id}"
                )
                await heard_of(
                    lambda name, data: (
                        name == "space.removed" and data["space_id"] == spaces["Joint"]
                    )
                )
                await post("Joint", "after her removal")
                await post("Just Paula", "marker two")
                await heard_of(body("marker two"))
                assert not any(body("after her removal")(n, d) for n, d in heard)

                # she signs out on node 1: her socket on node 2 is closed too
                await paula_api.request("POST", "/api/logout", {})
                await heard_of(lambda name, _data: name == "disconnect")
                await post("Just Paula", "after her sign-out")
                await post("Joint", "to the others")  # nothing reaches a closed socket
                assert not any(body("after her sign-out")(n, d) for n, d in heard)
            finally:
                await sio.disconnect()
                await paula_api.__aexit__()
