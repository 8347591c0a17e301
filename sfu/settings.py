"""Typed settings for the media path (one object, passed to :class:`sfu.Worker`)."""

from __future__ import annotations

from dataclasses import dataclass

#: DTLS-SRTP protection profiles Caucus accepts, strongest first.
AES128_SRTP_PROFILES: tuple[str, ...] = ("SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80")


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to clients (the SFU itself gathers host candidates only)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class MediaSettings:
    """Everything the SFU needs to know about its network and media policy."""

    #: UDP port range for ICE host candidates (inclusive). ``None`` lets the OS choose.
    udp_port_min: int | None = None
    udp_port_max: int | None = None
    #: Public address written into SDP host candidates (1:1 NAT, like mediasoup's announcedIp).
    announced_ip: str | None = None
    #: STUN/TURN servers passed to clients.
    ice_servers: tuple[IceServer, ...] = ()
    #: DTLS-SRTP profiles offered and accepted, in order of preference.
    srtp_profiles: tuple[str, ...] = AES128_SRTP_PROFILES
    #: Codecs a publisher may send (MIME types, case-insensitive).
    codecs: tuple[str, ...] = ("audio/opus", "video/VP8", "video/H264")
    #: The video codecs a live room forwards, most preferred first.  The SFU does not
    #: transcode, so a room's video must be a codec every participant decodes: VP8, which
    #: every WebRTC browser must decode (RFC 7742).  A publisher in a room is answered with
    #: the first of these it offers (whatever its own order) and refused when it offers
    #: none.  Add "video/H264" only where every client is known to decode H.264.  Video
    #: messages (a publisher in no room, received by the recorder) may use any of
    #: ``codecs``.
    room_video_codecs: tuple[str, ...] = ("video/VP8",)
    #: At most one keyframe request per producer within this interval.
    keyframe_request_interval: float = 0.3
    #: A NACKed sequence number is retransmitted at most once within this interval.
    nack_repeat_interval: float = 0.1
    #: Retransmissions per consumer per second (token bucket refill rate and depth).
    nack_rate: float = 200.0
    #: Packets kept per video producer for retransmission (a power of two).
    retransmission_buffer: int = 1024
    #: Bitrate reported to video publishers (REMB) when no subscriber says otherwise.
    max_video_bitrate: int = 2_500_000
    #: Interval between SFU-generated RTCP reports (SR, RR, REMB), seconds.
    rtcp_interval: float = 1.0
    #: Seconds a negotiation step may take before the transport gives up.
    negotiation_timeout: float = 10.0
    #: ICE consent freshness (RFC 7675): a check every ``consent_interval`` seconds
    #: (±20 %); a transport closes when none was answered for ``consent_expiry`` seconds.
    #: An answer counts however late it arrives within that window.
    consent_interval: float = 5.0
    consent_expiry: float = 30.0

    # --- limits against hostile peers (docs/security.md) ---------------------------------
    #: Media sections (m-lines) a publish offer may hold, and how many of them may be
    #: active (audio, camera, screen + one); an SDP longer than ``max_sdp_chars`` is refused.
    max_offer_media_sections: int = 16
    max_tracks_per_publisher: int = 4
    #: Simulcast layers (encodings) of one camera the SFU accepts; an offer with more
    #: is answered with the first ones (docs/media-quality.md).
    max_simulcast_layers: int = 3
    #: Seconds between two rounds of simulcast layer selection (sfu/layer_selection.py);
    #: 0: none (layers are chosen by whoever calls ``Consumer.select_layer``).
    layer_interval: float = 0.5
    max_sdp_chars: int = 200_000
    #: A transport that has not connected this many seconds after its first negotiation
    #: is closed and its ports freed.
    connect_timeout: float = 20.0
    #: Datagrams longer than this are dropped before SRTP (a path MTU is ~1500 bytes).
    max_datagram: int = 1500
    #: Unknown-SSRC packets a transport may send within ``abuse_window`` seconds before
    #: it is closed (they are dropped before SRTP from the first one on).
    max_unknown_ssrc_packets: int = 500
    abuse_window: float = 10.0
    #: SRTCP compound packets a peer may send per second per transport (token bucket,
    #: depth one second); the rest is dropped before it is parsed.
    rtcp_rate: float = 500.0
    #: NACK feedback items (16 sequence numbers each) kept from one RTCP packet, and NACKed
    #: sequence numbers a consumer considers per second; the rest is ignored unexpanded.
    max_nack_items: int = 16
    nack_entries_rate: float = 1000.0
    #: A subscriber's keyframe request (PLI/FIR) reaches a publisher at most once per
    #: this interval, whatever the number of askers.
    subscriber_keyframe_interval: float = 1.0
    #: A subscriber's REMB counts for this long, and never below the floor (bits/s).
    remb_expiry: float = 5.0
    remb_floor: int = 150_000
    #: A publisher's budget: a token bucket of ``publisher_budget_multiple`` x the rate it
    #: is told (video: ``max_video_bitrate``; audio: ``max_audio_bitrate``), capped at
    #: ``publisher_budget_cap`` bits/s, one second deep.  Packets over it are dropped; a
    #: publisher that stays over for ``abuse_window`` seconds (``max_over_budget_share``
    #: of its packets dropped) is disconnected.
    publisher_budget_multiple: float = 2.0
    publisher_budget_cap: int = 10_000_000
    max_audio_bitrate: int = 256_000
    max_over_budget_share: float = 0.5
    #: Publish connections' sockets are read through one epoll set per worker (one
    #: wake-up and one Python call for every socket ready at once) when the compiled
    #: module is built; off, each socket is read on its own readiness event (asyncio's).
    receive_poller: bool = True
    #: With the poller: while publish sockets wake the worker more than once per this
    #: many seconds, they are read on a tick of this length instead (fewer wake-ups under
    #: load, at most this much added delay), until most ticks find nothing.  0: never.
    receive_busy_tick: float = 0.001
    #: Seconds between two decisions of each room's active speaker (``sfu.speaker``).
    speaker_interval: float = 0.3
    #: Simulcast (``sfu.bandwidth``, docs/media-quality.md): a subscriber's estimated
    #: downlink before any feedback and its floor (bits/s); a layer is switched up to after
    #: the subscriber's share has carried it for ``layer_up_wait`` seconds, and retried
    #: after a failed switch no sooner than ``layer_max_up_wait`` at the most.
    downlink_start_bitrate: int = 800_000
    downlink_min_bitrate: int = 100_000
    #: Subscribe offers carry transport-wide congestion control (the transport-cc header
    #: extension and feedback, ``sfu.transport_cc_sdp``): a subscriber that answers it
    #: reports every packet's arrival, and its downlink is estimated from the delay those
    #: arrivals show (``sfu.delay_based``) as well as from loss.
    transport_cc: bool = True
    layer_up_wait: float = 3.0
    layer_max_up_wait: float = 8.0
    #: A subscriber's video is withheld for bandwidth only when its loss is at least this
    #: on the lowest layer (``sfu.bandwidth.LayerRule.pause_loss``); a REMB drop alone
    #: takes it down to the lowest layer, never off.
    layer_pause_loss: float = 0.10
    #: Seconds between two log lines about the same repeated failure (one line, a count).
    repeated_log_interval: float = 10.0
    #: While transports have closed, a full garbage collection at most this often (a
    #: closed peer connection is reference cycles; see ``Worker._reclaim_closed``).
    reclaim_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.layer_interval < 0:
            raise ValueError("layer_interval must be 0 (off) or positive")
        if (self.udp_port_min is None) != (self.udp_port_max is None):
            raise ValueError("udp_port_min and udp_port_max go together")
        if self.udp_port_min is not None and not (
            0 < self.udp_port_min <= self.udp_port_max <= 65535  # type: ignore[operator]  # both bounds checked set just above
        ):
            raise ValueError("invalid UDP port range")
        if not 0 < self.consent_interval < self.consent_expiry:
            raise ValueError("consent_interval must be positive and below consent_expiry")
        if not self.room_video_codecs:
            raise ValueError("a live room needs at least one video codec")
        if {c.lower() for c in self.room_video_codecs} - {c.lower() for c in self.codecs}:
            raise ValueError("room_video_codecs must be among codecs")
        if not self.srtp_profiles:
            raise ValueError("at least one SRTP profile is required")
        if not 0 < self.max_tracks_per_publisher <= self.max_offer_media_sections:
            raise ValueError("max_tracks_per_publisher must be in 1..max_offer_media_sections")
        if not 0 < self.downlink_min_bitrate <= self.downlink_start_bitrate:
            raise ValueError("need 0 < downlink_min_bitrate <= downlink_start_bitrate")
        if not 0 <= self.layer_up_wait <= self.layer_max_up_wait:
            raise ValueError("need 0 <= layer_up_wait <= layer_max_up_wait")
        if not 0 <= self.layer_pause_loss <= 1:
            raise ValueError("layer_pause_loss is a share, 0..1")
        size = self.retransmission_buffer
        if size <= 0 or size & (size - 1):
            raise ValueError("retransmission_buffer must be a power of two")
