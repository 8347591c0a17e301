"""A simulcast video publisher for the headless client, sending as Chromium sends VP8
simulcast: one video m-line, three RTP streams (lowest layer first: ``q`` a quarter of
the picture's width and height, ``h`` half, ``f`` full).

:class:`SimulcastVideo` puts one transceiver on a
:class:`~client.direct_publish.DirectPublisher`'s connection and, once negotiated, sends
each layer's pre-encoded clip (:mod:`client.simulcast_clips`) as a stream of its own: a
random SSRC, its own sequence numbers, timestamps and VP8 picture IDs, the payload type
negotiated for VP8, and on every packet the ``mid`` and ``rtp-stream-id`` (its RID)
header extensions.  The offer aiortc writes knows nothing of this;
:meth:`SimulcastVideo.rewrite_offer` makes the server's copy a simulcast offer
(:mod:`client.simulcast_sdp`) and :meth:`SimulcastVideo.accept_answer` reads which
layers the answer accepted (and the extension ids to send with); :func:`negotiate`
does the whole offer and answer of a publish connection, with or without a simulcast
video on it.

Each layer is a :class:`SimulcastLayer` that a test can pause and resume
(:meth:`SimulcastVideo.pause`), and that answers a keyframe request (a PLI, or a FIR,
naming its SSRC) by sending its clip's keyframe as its next frame; with
``keyframes_on_all_layers`` every layer does, as libwebrtc's VP8 encoder does when one
libvpx instance encodes all the layers.  The layers send sender reports (and their
CNAME) every second.  No RTX is sent (NACKs are not answered); the
``repaired-rtp-stream-id`` extension is declared, as Chromium declares it.

    publisher = DirectPublisher(pc)
    video = SimulcastVideo(publisher, simulcast_clips())
    await negotiate(pc, signal.publish, video)
    publisher.start()
    ...
    video.pause("f")
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Awaitable, Callable, Sequence

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, AnyRtcpPacket, RtcpPsfbPacket

from sfu import rtc
from sfu.rtc.internals import rtp_router

from .direct_publish import DirectPublisher, PacketizedClip, PublishedStream, packetize_vp8
from .simulcast_clips import LayerClip, LayerSpec, is_vp8_keyframe
from .simulcast_sdp import (
    MID_URI,
    RID_URI,
    SimulcastAnswer,
    SimulcastOffer,
    SimulcastSdpError,
    read_answer,
    rewrite_offer,
)

log = logging.getLogger(__name__)

_FIR_ENTRY = struct.Struct("!IB3x")


class SimulcastLayer(PublishedStream):
    """One layer of a :class:`SimulcastVideo`: a :class:`PublishedStream` with a RID and
    an SSRC of its own, which counts the keyframe requests that named it."""

    __slots__ = ("keyframe_requests", "spec")

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        clip: PacketizedClip,
        spec: LayerSpec,
        *,
        ssrc: int,
        header_extensions: Sequence[RTCRtpHeaderExtensionParameters],
        cname: str | None,
    ) -> None:
        super().__init__(
            transceiver,
            clip,
            ssrc=ssrc,
            rid=spec.rid,
            header_extensions=header_extensions,
            cname=cname,
        )
        self.spec = spec
        #: PLIs and FIRs that named this layer's SSRC
        self.keyframe_requests = 0


class SimulcastVideo:
    """A simulcast video source on a :class:`DirectPublisher` (see the module).

    ``clips`` are the layers' clips, lowest first (each starting with its only
    keyframe).  ``keyframes_on_all_layers``: a keyframe request for one layer restarts
    every layer.  ``cname`` is the one sender reports carry (default: the CNAME of
    aiortc's offer).  Owns its transceiver's feedback handling; the publisher owns the
    sending.
    """

    def __init__(
        self,
        publisher: DirectPublisher,
        clips: Sequence[LayerClip],
        *,
        keyframes_on_all_layers: bool = False,
        cname: str | None = None,
    ) -> None:
        if len(clips) < 2:
            raise ValueError("simulcast needs two layers or more")
        rids = [clip.spec.rid for clip in clips]
        if len(set(rids)) != len(rids):
            raise ValueError(f"layers with one rid: {rids}")
        for clip in clips:
            if not clip.frames or not is_vp8_keyframe(clip.frames[0]):
                raise ValueError(f"the {clip.spec.rid} clip does not start with a keyframe")
        self._clips = {clip.spec.rid: clip for clip in clips}
        self._packetized = {
            clip.spec.rid: packetize_vp8(list(clip.frames), clip.fps) for clip in clips
        }
        self._publisher = publisher
        self._keyframes_on_all_layers = keyframes_on_all_layers
        self._cname = cname
        self._paused: set[str] = set()
        self._fir_numbers: dict[int, int] = {}
        self.transceiver = publisher.add_transceiver("video", "video/VP8", self._on_rtcp)
        publisher.add_streams(self._build)
        #: What was offered and what the answer accepted, once known.
        self.offer: SimulcastOffer | None = None
        self.answer: SimulcastAnswer | None = None
        #: The layers sent, by RID, once the publisher started (those the answer accepted).
        self.layers: dict[str, SimulcastLayer] = {}
        self._by_ssrc: dict[int, SimulcastLayer] = {}

    @property
    def rids(self) -> tuple[str, ...]:
        """Every layer's RID, lowest first."""
        return tuple(self._clips)

    def layer(self, rid: str) -> SimulcastLayer:
        """The layer ``rid`` (once the publisher started)."""
        try:
            return self.layers[rid]
        except KeyError:
            raise KeyError(f"no layer {rid!r} is sent (layers: {sorted(self.layers)})") from None

    # --- negotiation ------------------------------------------------------------------

    def rewrite_offer(self, sdp: str) -> str:
        """aiortc's offer ``sdp`` as the server must see it: the transceiver's m-line a
        simulcast m-line (call after ``setLocalDescription``)."""
        mid = self.transceiver.mid
        if mid is None:
            raise SimulcastSdpError("the offer is not made yet: the transceiver has no mid")
        self.offer = rewrite_offer(sdp, mid, self.rids)
        return self.offer.sdp

    def accept_answer(self, sdp: str) -> SimulcastAnswer:
        """Read the answer (raises :class:`~client.simulcast_sdp.SimulcastSdpError` when
        it does not accept simulcast); call before the publisher's ``start()``."""
        if self.offer is None:
            raise SimulcastSdpError("no simulcast offer was made")
        self.answer = read_answer(sdp, self.offer.mid, self.offer.rids)
        self._paused.update(self.answer.paused)
        return self.answer

    def _build(self) -> Sequence[PublishedStream]:
        """The accepted layers' streams, made when the publisher starts."""
        answer = self.answer
        if answer is None:
            raise SimulcastSdpError("start the publisher after accept_answer()")
        extensions = [
            RTCRtpHeaderExtensionParameters(id=answer.extension_ids[uri], uri=uri)
            for uri in (MID_URI, RID_URI)
        ]
        sender = self.transceiver.sender
        taken = {
            ssrc
            for t in self._publisher.pc.getTransceivers()
            for ssrc in rtc.sender_ssrcs(t.sender)
        }
        cname = self._cname or (self.offer.cname if self.offer else None)
        layers = []
        for rid in (r for r in self._clips if r in answer.rids):
            ssrc = 0
            while ssrc == 0 or ssrc in taken:
                ssrc = random.getrandbits(32)
            taken.add(ssrc)
            layer = SimulcastLayer(
                self.transceiver,
                self._packetized[rid],
                self._clips[rid].spec,
                ssrc=ssrc,
                header_extensions=extensions,
                cname=cname,
            )
            if rid in self._paused:
                layer.pause()
            # feedback naming the layer's SSRC reaches the transceiver's sender
            rtp_router(sender.transport).register_sender(sender, ssrc)
            layers.append(layer)
        self.layers = {layer.spec.rid: layer for layer in layers}
        self._by_ssrc = {layer.ssrc: layer for layer in layers}
        log.info(
            "simulcast layers %s on mid %s",
            ", ".join(f"{layer.rid}={layer.ssrc}" for layer in layers),
            answer.mid,
            extra={"mid": answer.mid, "layers": {layer.rid: layer.ssrc for layer in layers}},
        )
        return layers

    # --- control ----------------------------------------------------------------------

    def pause(self, rid: str) -> None:
        """Stop sending layer ``rid`` (before the publisher starts, too)."""
        self._check(rid)
        self._paused.add(rid)
        if rid in self.layers:
            self.layers[rid].pause()

    def resume(self, rid: str) -> None:
        """Send layer ``rid`` again, from its keyframe."""
        self._check(rid)
        self._paused.discard(rid)
        if rid in self.layers:
            self.layers[rid].resume()

    def request_keyframe(self, rid: str) -> None:
        """Make layer ``rid``'s next frame a keyframe (every layer's, with
        ``keyframes_on_all_layers``), as a keyframe request for it does."""
        layer = self.layer(rid)
        for other in self.layers.values() if self._keyframes_on_all_layers else (layer,):
            other.restart()

    def _check(self, rid: str) -> None:
        if rid not in self._clips:
            raise KeyError(f"no layer {rid!r} (layers: {list(self._clips)})")

    def _on_rtcp(self, packet: AnyRtcpPacket) -> None:
        """Keyframe requests for a layer's SSRC; the rest of the feedback is ignored."""
        if not isinstance(packet, RtcpPsfbPacket):
            return
        if packet.fmt == RTCP_PSFB_PLI:
            self._keyframe_requested(packet.media_ssrc)
        elif packet.fmt == RTCP_PSFB_FIR:  # RFC 5104 §4.3.1: entries of SSRC, number
            fci = packet.fci
            for offset in range(0, len(fci) - len(fci) % _FIR_ENTRY.size, _FIR_ENTRY.size):
                ssrc, number = _FIR_ENTRY.unpack_from(fci, offset)
                if ssrc in self._by_ssrc and self._fir_numbers.get(ssrc) != number:
                    self._fir_numbers[ssrc] = number  # a repeated number asks nothing new
                    self._keyframe_requested(ssrc)

    def _keyframe_requested(self, ssrc: int) -> None:
        layer = self._by_ssrc.get(ssrc)
        if layer is None:
            return
        layer.keyframe_requests += 1
        self.request_keyframe(layer.spec.rid)


async def negotiate(
    pc: RTCPeerConnection,
    publish: Callable[[str], Awaitable[str]],
    video: SimulcastVideo | None = None,
) -> None:
    """Negotiate the publish connection ``pc``: make its offer, send it with ``publish``
    (the signal's: the offer's SDP in, the answer's SDP out) and apply the answer.

    With ``video`` (a :class:`SimulcastVideo` on ``pc``) the server is sent the
    simulcast offer and ``video`` reads what the answer accepted; that raises
    :class:`~client.simulcast_sdp.SimulcastSdpError` when the answer does not accept
    simulcast.  Start the publisher afterwards.
    """
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    if video is not None:
        offer = video.rewrite_offer(offer)
    answer = await publish(offer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    if video is not None:
        video.accept_answer(answer)


__all__ = ["SimulcastLayer", "SimulcastVideo", "negotiate"]
