"""A stand-in for a server that accepts simulcast, for the client's tests: aiortc answers
the publisher's offer (it ignores RIDs and ``a=simulcast``), and :func:`accept_simulcast`
writes into that answer what a simulcast-capable answerer writes (RFC 8853)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from aiortc import RTCPeerConnection, RTCSessionDescription

from client.signal import OfferHandler
from client.simulcast_sdp import SIMULCAST_EXTENSIONS, SimulcastOffer


def _sections(sdp: str) -> list[list[str]]:
    lines = [line for line in sdp.split("\r\n") if line]
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")] + [len(lines)]
    return [lines[: starts[0]]] + [lines[a:b] for a, b in itertools.pairwise(starts)]


def offered_simulcast(offer: str) -> SimulcastOffer:
    """The simulcast m-line of ``offer`` read back: its mid, RIDs and extension ids."""
    (section,) = [s for s in _sections(offer) if any(x.startswith("a=simulcast:") for x in s)]
    mid = next(line[len("a=mid:") :] for line in section if line.startswith("a=mid:"))
    rids = tuple(
        line[len("a=rid:") :].split(" ")[0] for line in section if line.startswith("a=rid:")
    )
    ids = {
        line.split(" ")[1]: int(line[len("a=extmap:") :].split(" ")[0])
        for line in section
        if line.startswith("a=extmap:")
    }
    return SimulcastOffer(offer, mid, rids, {u: ids[u] for u in SIMULCAST_EXTENSIONS}, None)


def accept_simulcast(
    answer: str,
    offer: SimulcastOffer,
    *,
    rids: Sequence[str] | None = None,
    paused: Sequence[str] = (),
) -> str:
    """``answer`` with the m-line ``offer.mid`` accepting ``rids`` (default: all offered;
    those in ``paused`` marked ``~``) and the offer's simulcast header extensions."""
    rids = offer.rids if rids is None else tuple(rids)
    sections = _sections(answer)
    for section in sections[1:]:
        if f"a=mid:{offer.mid}" not in section:
            continue
        declared = [line.split(" ")[1] for line in section if line.startswith("a=extmap:")]
        mid_line = section.index(f"a=mid:{offer.mid}")
        section[mid_line + 1 : mid_line + 1] = [
            f"a=extmap:{offer.extension_ids[uri]} {uri}"
            for uri in SIMULCAST_EXTENSIONS
            if uri not in declared
        ]
        listed = ";".join(("~" if rid in paused else "") + rid for rid in rids)
        section += [f"a=rid:{rid} recv" for rid in rids] + [f"a=simulcast:recv {listed}"]
        break
    else:
        raise AssertionError(f"no m-line {offer.mid} in the answer")
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


class SimulcastAnsweringSignal:
    """A :class:`client.signal.Signal` whose publish offers ``receiver`` (an aiortc peer
    connection of the test's) answers as a simulcast-capable server would: aiortc's
    answer, then :func:`accept_simulcast`.  There is no subscribe side."""

    def __init__(self, receiver: RTCPeerConnection) -> None:
        self.on_ended: Callable[[str], None] | None = None
        self.receiver = receiver
        #: the offers received, as a server sees them
        self.offers: list[str] = []

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        return None

    async def publish(self, offer_sdp: str) -> str:
        self.offers.append(offer_sdp)
        receiver = self.receiver
        await receiver.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await receiver.setLocalDescription(await receiver.createAnswer())
        return accept_simulcast(receiver.localDescription.sdp, offered_simulcast(offer_sdp))

    async def close(self) -> None:
        return None


__all__ = ["SimulcastAnsweringSignal", "accept_simulcast", "offered_simulcast"]
