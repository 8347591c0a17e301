"""A SimulcastProducer is one published camera that arrives as several layers.

The publisher sends each layer (encoding) as its own RTP stream: its own SSRC,
sequence numbers and timestamps, one payload type for all, and its rid in the
rtp-stream-id header extension (``repaired-rtp-stream-id`` on retransmissions).  Each
layer is an ordinary :class:`~sfu.producer.Producer` (retransmission buffer, reception
statistics, keyframe requests on its own SSRC, the compiled forwarding path), and this
object is the track the router and the subscribers know: a
:class:`~sfu.consumer.Consumer` of it forwards exactly one layer at a time
(:meth:`Consumer.select_layer`), switching on a keyframe of the layer it goes to.

A packet of an SSRC not seen yet is placed by its rid (or, RTX, its repaired rid);
one without is dropped and counted (``unplaced``): without a rid nothing tells which
layer it is.  A publisher restarting a layer with a new SSRC keeps the layer.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpSrPacket, pack_remb_fci

from .bandwidth import publisher_bitrate
from .producer import Producer, ProducerSink
from .rtp_header import header_extension

if TYPE_CHECKING:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from .consumer import Consumer
    from .rtc.writer import RtpWriter
    from .settings import MediaSettings
    from .simulcast_sdp import SimulcastSection

#: A layer counts as arriving while its last packet is younger than this (seconds).
LAYER_ACTIVE_WINDOW = 1.5
#: Seconds over which a layer's incoming bitrate is measured.
MEASURE_WINDOW = 2.0


class SimulcastProducer:
    """One camera of ``participant_id`` published as ``section.rids`` layers (lowest
    first), each a :class:`Producer` in :attr:`layers`."""

    kind = "video"

    def __init__(
        self,
        *,
        participant_id: str,
        codec: RTCRtpCodecParameters,
        rtx_payload_type: int | None,
        rtcp_ssrc: int,
        writer: RtpWriter,
        settings: MediaSettings,
        section: SimulcastSection,
        on_abuse: Callable[[str], None] | None = None,
        compiled: bool = True,
    ) -> None:
        """``compiled=False`` keeps the layers' state in Python (see :class:`Producer`)."""
        self.id = uuid.uuid4().hex
        self.participant_id = participant_id
        self.codec = codec
        self.mid: str | None = section.mid
        self.rids = section.rids
        self.closed = False
        self._payload_type = codec.payloadType
        self._rtx_payload_type = rtx_payload_type
        self._rid_id = section.rid_extension_id
        self._repaired_id = section.repaired_rid_extension_id
        self._rtcp_ssrc = rtcp_ssrc
        self.__writer = writer
        self._settings = settings
        self.layers: list[Producer] = [
            Producer(
                participant_id=participant_id,
                kind="video",
                codec=codec,
                rtx_payload_type=rtx_payload_type,
                rtcp_ssrc=rtcp_ssrc,
                writer=writer,
                settings=settings,
                mid=section.mid,
                on_abuse=on_abuse,
                compiled=compiled,
                layer_of=self,
            )
            for _ in section.rids
        ]
        self._index = {rid: i for i, rid in enumerate(section.rids)}
        #: SSRC -> its layer (media and RTX), and (layer, is RTX) -> SSRC.
        self._by_ssrc: dict[int, Producer] = {}
        self._ssrc_of: dict[tuple[int, bool], int] = {}
        #: Consumers of this track, whichever layer each forwards (or none, paused).
        self.consumers: list[Consumer] = []
        #: Recorders (:meth:`add_sink`) and the layer they receive.
        self._sinks: list[ProducerSink] = []
        self._sink_layer: int | None = None
        #: Packets of an unknown SSRC without a (known) rid: dropped.
        self.unplaced = 0
        # each layer's bitrate, measured over the last interval (bits/s)
        self._measured: list[float] = [0.0] * len(self.layers)
        self._samples: collections.deque[tuple[float, list[int]]] = collections.deque()
        self._measure_at = time.monotonic()

    @property
    def _writer(self) -> RtpWriter:
        return self.__writer

    @_writer.setter
    def _writer(self, writer: RtpWriter) -> None:
        """The transport's writer changed (BUNDLE): every layer writes through it."""
        self.__writer = writer
        for layer in self.layers:
            layer._writer = writer

    # --- packets ------------------------------------------------------------------------

    def on_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        """Hand one decrypted RTP packet to its layer (see the module's docstring)."""
        if self.closed or len(data) < 12:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        layer = self._by_ssrc.get(ssrc)
        if layer is None:
            layer = self._place(data, ssrc)
            if layer is None:
                self.unplaced += 1
                return
        layer.on_rtp_data(data, arrival_time_ms)

    def _place(self, data: bytes, ssrc: int) -> Producer | None:
        payload_type = data[1] & 0x7F
        if payload_type == self._payload_type:
            rtx = False
            rid = header_extension(data, data[0], self._rid_id)
        elif payload_type == self._rtx_payload_type and self._repaired_id:
            rtx = True
            rid = header_extension(data, data[0], self._repaired_id)
        else:
            return None
        if rid is None:
            return None
        try:
            index = self._index.get(rid.decode("ascii"))
        except UnicodeDecodeError:
            return None
        if index is None:
            return None
        layer = self.layers[index]
        previous = self._ssrc_of.get((index, rtx))
        if previous is not None:
            self._by_ssrc.pop(previous, None)  # the layer restarted with a new SSRC
        self._ssrc_of[(index, rtx)] = ssrc
        self._by_ssrc[ssrc] = layer
        return layer

    def native_route(self, ssrc: int, payload_type: int) -> tuple[Any, Any] | None:
        """The compiled layer producer that may take ``ssrc``'s packets itself."""
        layer = self._by_ssrc.get(ssrc)
        return layer.native_route(ssrc, payload_type) if layer is not None else None

    def on_rtcp(self, packet: object) -> None:
        """The publisher's sender reports, each about one layer's SSRC."""
        if isinstance(packet, RtcpSrPacket):
            layer = self._by_ssrc.get(packet.ssrc)
            if layer is not None:
                layer.on_rtcp(packet)

    # --- layers -------------------------------------------------------------------------

    def measure(self, now: float | None = None) -> list[float]:
        """Each layer's incoming bitrate (bits/s) over the last ``MEASURE_WINDOW``
        seconds (a keyframe every second or two would swing a shorter window several
        times over), refreshed at most every half second."""
        now = time.monotonic() if now is None else now
        if now - self._measure_at >= 0.5 or not self._samples:
            self._measure_at = now
            self._samples.append((now, [layer.bytes for layer in self.layers]))
            while len(self._samples) > 2 and now - self._samples[1][0] >= MEASURE_WINDOW:
                self._samples.popleft()
            first_at, first = self._samples[0]
            elapsed = now - first_at
            if elapsed > 0:
                self._measured = [
                    (layer.bytes - before) * 8 / elapsed
                    for layer, before in zip(self.layers, first, strict=True)
                ]
        return list(self._measured)

    def active_layers(self, now_ms: int | None = None) -> list[bool]:
        """Whether each layer's packets are arriving (one within ``LAYER_ACTIVE_WINDOW``)."""
        if now_ms is None:
            now_ms = int(time.time() * 1000) + 2_208_988_800_000
        window = LAYER_ACTIVE_WINDOW * 1000
        return [
            layer.ssrc is not None and now_ms - layer.last_arrival_ms < window
            for layer in self.layers
        ]

    @property
    def bitrates(self) -> list[float]:
        """The layers' bitrates as last measured (bits/s)."""
        return list(self._measured)

    # --- what the router, the worker and the transport ask of a track -----------------

    def add_consumer(self, consumer: Consumer) -> None:
        if consumer not in self.consumers:
            self.consumers.append(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)

    def request_keyframe(self) -> None:
        for layer in self.layers:
            layer.request_keyframe()

    def add_sink(self, sink: ProducerSink) -> None:
        """A recorder receives the highest layer arriving (the top one until layers are
        known), and follows it when it changes (:meth:`follow_sinks`)."""
        if self.closed:
            sink.on_producer_closed(self)  # type: ignore[arg-type]  # a recorder takes a Track
            return
        if sink in self._sinks:
            return
        self._sinks.append(sink)
        if self._sink_layer is None:
            self._sink_layer = self._recording_layer(None)
        self.layers[self._sink_layer].add_sink(sink)

    def remove_sink(self, sink: ProducerSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
        for layer in self.layers:
            layer.remove_sink(sink)
        if not self._sinks:
            self._sink_layer = None

    def follow_sinks(self, now_ms: int | None = None) -> int | None:
        """Move the recorders to the highest layer arriving at ``now_ms`` when that is no
        longer the one they receive (a publisher whose uplink cannot carry its top layer
        stops sending it; it comes back when it can), and ask that layer for a keyframe,
        from which the recording goes on.  With no layer arriving they stay where they
        are.  Returns the layer recorded (``None``: no recorder).  The worker calls this
        every layer-selection round."""
        if not self._sinks or self.closed:
            return None
        target = self._recording_layer(now_ms)
        current = self._sink_layer
        if target != current:
            if current is not None:
                for sink in self._sinks:
                    self.layers[current].remove_sink(sink)
            for sink in self._sinks:
                self.layers[target].add_sink(sink)
            self._sink_layer = target
            self.layers[target].request_keyframe()
        return self._sink_layer

    def _recording_layer(self, now_ms: int | None) -> int:
        active = self.active_layers(now_ms)
        highest = max((i for i, on in enumerate(active) if on), default=None)
        if highest is not None:
            return highest
        return self._sink_layer if self._sink_layer is not None else len(self.layers) - 1

    def send_reports(self) -> None:
        """Send :meth:`receiver_reports` (alone; see ``Transport.send_receiver_reports``)."""
        data = self.receiver_reports()
        if data is not None:
            self._writer.write_rtcp(data)

    def receiver_reports(self) -> bytes | None:
        """A receiver report per layer, and one REMB for the whole camera: what the layers
        its subscribers want need (:meth:`estimated_bitrate`); ``None``: nothing due."""
        reports = [layer.receiver_reports() for layer in self.layers]
        data = b"".join(report for report in reports if report is not None)
        ssrcs = [layer.ssrc for layer in self.layers if layer.ssrc is not None]
        if ssrcs and not self.closed:
            data += bytes(
                RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=self._rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(self.estimated_bitrate(), ssrcs),
                )
            )
        return data or None

    def estimated_bitrate(self) -> int:
        """The bitrate the publisher is told it may send (its REMB): what every layer up
        to the highest one a subscriber wants needs (:func:`~sfu.bandwidth.publisher_bitrate`),
        not the weakest subscriber's rate."""
        wanted = [c.wanted_layer for c in self.consumers if not c.closed]
        if any(layer is None for layer in wanted):
            wanted = [len(self.layers) - 1]  # a subscriber not measured yet: all layers
        return publisher_bitrate(wanted, self._measured, self._settings.max_video_bitrate)

    def close(self) -> None:
        self.closed = True
        for layer in self.layers:
            layer.close()

    @property
    def packets(self) -> int:
        return sum(layer.packets for layer in self.layers)

    @property
    def bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    @property
    def nacks_sent(self) -> int:
        return sum(layer.nacks_sent for layer in self.layers)

    @property
    def retransmissions_received(self) -> int:
        return sum(layer.retransmissions_received for layer in self.layers)

    @property
    def keyframe_requests_sent(self) -> int:
        return sum(layer.keyframe_requests_sent for layer in self.layers)

    @property
    def keyframe_requests_coalesced(self) -> int:
        return sum(layer.keyframe_requests_coalesced for layer in self.layers)

    @property
    def dropped_over_budget(self) -> int:
        return sum(layer.dropped_over_budget for layer in self.layers)

    def stats(self) -> dict[str, object]:
        return {
            "id": self.id,
            "participant_id": self.participant_id,
            "kind": self.kind,
            "codec": self.codec.mimeType,
            "simulcast": list(self.rids),
            "packets_received": self.packets,
            "bytes_received": self.bytes,
            "unplaced": self.unplaced,
            "dropped_over_budget": self.dropped_over_budget,
            "keyframe_requests_coalesced": self.keyframe_requests_coalesced,
            "consumers": len(self.consumers),
            "layers": [
                {"rid": rid, "bitrate": round(rate), **layer.stats()}
                for rid, rate, layer in zip(self.rids, self._measured, self.layers, strict=True)
            ],
        }


#: A published track as the router, the worker and the signaling see it: one stream, or a
#: camera of several layers.
Track: TypeAlias = Producer | SimulcastProducer
