"""Keep the participants of one case of a load-test accounts file in its live room for a
while, rejoining as the live page does, and print what happens: each ending, each
rejoin, and the audio packets each received in the last 2 seconds.

    python live_room.py URL ACCOUNTS_FILE ROOM_INDEX SECONDS [OTHER_NODE_URL ...]
"""

import asyncio
import json
import logging
import sys
import time

from client import Participant, SocketSignal


def received(person: Participant) -> int:
    return sum(t.packets for t in [*person.past_tracks, *person.tracks.values()])


async def main(url: str, case: dict, seconds: float, others: list[str]) -> None:
    people = []
    for account in case["accounts"]:
        signal = SocketSignal(
            url,
            account["username"],
            account["password"],
            case["case_id"],
            insecure=True,
            urls=others,
        )
        people.append(
            Participant(account["username"], signal, video=None, decode=False, rejoin=True)
        )
    await asyncio.gather(*(p.join() for p in people))
    before = {p.id: received(p) for p in people}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(2)
        now = {p.id: received(p) for p in people}
        counts = ", ".join(f"{p.id} {now[p.id] - before[p.id]}" for p in people)
        print(time.strftime("%H:%M:%S"), "packets in 2 s:", counts, flush=True)
        before = now
    await asyncio.gather(*(p.close() for p in people))


logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
logging.getLogger("client.participant").setLevel(logging.INFO)
with open(sys.argv[2]) as accounts:
    chosen = json.load(accounts)["rooms"][int(sys.argv[3])]
asyncio.run(main(sys.argv[1], chosen, float(sys.argv[4]), sys.argv[5:]))
