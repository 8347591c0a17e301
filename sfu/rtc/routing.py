"""Routing a publisher's RTP by its mid when aiortc's router cannot.

aiortc's ``RtpRouter.route_rtp`` places a packet of an unknown SSRC by its payload type,
and only when exactly one receiver has that payload type.  A browser publishing its
camera as simulcast declares none of the layers' SSRCs, and its screen share uses the
same payload type: the camera's layers would be dropped.  Every browser puts the mid
header extension (``sdes:mid``) on a new stream's packets, so a packet aiortc's router
drops is placed by its mid instead (and its SSRC learned, as aiortc learns one).
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from .internals import rtp_router

_ROUTED = "_caucus_routes_by_mid"


def route_by_mid(pc: RTCPeerConnection) -> None:
    """Let ``pc``'s RTP routers place unknown SSRCs by the packet's mid (idempotent)."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None:
            continue
        router = rtp_router(dtls)
        if getattr(router, _ROUTED, False):
            continue
        original = router.route_rtp

        def route(packet: RtpPacket, router: Any = router, original: Any = original) -> Any:
            receiver = original(packet)
            if receiver is not None:
                return receiver
            mid = packet.extensions.mid
            if mid is None or packet.ssrc in router.ssrc_table:
                return None
            candidate = router.mid_table.get(mid)
            if candidate is None or candidate not in router.payload_type_table.get(
                packet.payload_type, ()
            ):
                return None
            router.ssrc_table[packet.ssrc] = candidate
            return candidate

        router.route_rtp = route  # type: ignore[method-assign]  # the route replaces aiortc's method
        setattr(router, _ROUTED, True)
