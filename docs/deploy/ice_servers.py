"""Print the ICE servers a browser receives: sign in as the first participant of the first
case of a load-test accounts file (``caucus loadtest --setup``), join its live room
(``media.join``) and print the reply's ``ice_servers``.

    python ice_servers.py URL ACCOUNTS_FILE
"""

import asyncio
import json
import sys

from client import SocketSignal


async def main(url: str, room: dict) -> None:
    account = room["accounts"][0]
    signal = SocketSignal(
        url, account["username"], account["password"], room["case_id"], insecure=True
    )

    async def no_answer(offer: str) -> str:
        raise RuntimeError("not receiving")

    await signal.connect("", no_answer)
    print(json.dumps(signal.ice_servers, indent=2))
    await signal.close()


with open(sys.argv[2]) as accounts:
    first_room = json.load(accounts)["rooms"][0]
asyncio.run(main(sys.argv[1], first_room))
