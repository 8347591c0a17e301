"""The aiortc boundary: the only code that names aiortc's, aioice's, asyncio's and
pylibsrtp's internals (listed in :data:`sfu.rtc.requirements.REQUIREMENTS`).

aiortc's public API decodes every received track; the SFU needs the decrypted RTP
packets instead, and writes packets to a sender without an encoder.  One module per
concern:

* :mod:`~sfu.rtc.native`: the compiled module and whether its paths are used
  (:func:`native_paths`);
* :mod:`~sfu.rtc.srtp`: DTLS-SRTP profiles;
* :mod:`~sfu.rtc.hooks`: RTP/RTCP hooks on aiortc's receivers and senders;
* :mod:`~sfu.rtc.demux`: the one RTP/RTCP/other demultiplexing rule;
* :mod:`~sfu.rtc.receive`: the direct receive path (socket → SRTP → hook);
* :mod:`~sfu.rtc.guard`: the ingress guard around aiortc's own receive path;
* :mod:`~sfu.rtc.writer`: :class:`RtpWriter`, RTP/RTCP out;
* :mod:`~sfu.rtc.consent`: ICE consent freshness;
* :mod:`~sfu.rtc.ice`: the selected ICE candidate pair (statistics);
* :mod:`~sfu.rtc.ports`: a UDP port range for host candidates;
* :mod:`~sfu.rtc.internals`: accessors of the private names, for code outside.
"""

from .requirements import check_versions

check_versions()

from .consent import consent_stats, keep_consent  # noqa: E402
from .demux import KIND_MALFORMED, KIND_OTHER, KIND_RTCP, KIND_RTP, classify  # noqa: E402
from .guard import GuardedSrtpSession, guard_ingress  # noqa: E402
from .hooks import (  # noqa: E402
    IdleTrack,
    handler_failed,
    intercept_receiver_rtcp,
    intercept_rtp,
    intercept_rtp_data,
    intercept_sender_rtcp,
    limit_codecs,
    negotiated_codecs,
    negotiated_header_extensions,
    receiver_rtcp_ssrc,
    sender_ssrcs,
    stop_receiver_reports,
)
from .ice import SignalledCandidates, selected_pair  # noqa: E402
from .native import FASTPATH, FASTRECEIVE, log_native_paths, native_paths  # noqa: E402
from .poller import ReceivePoller  # noqa: E402
from .ports import bind_ports_in_range, local_addresses  # noqa: E402
from .receive import (  # noqa: E402
    direct_receive_failures,
    drop_incoming_rtp,
    receive_directly,
    refresh_ssrc_policy,
    set_ssrc_policy,
)
from .routing import route_by_mid  # noqa: E402
from .srtp import negotiated_srtp_profile, restrict_srtp_profiles, srtp_profiles  # noqa: E402
from .writer import RtpWriter  # noqa: E402

__all__ = [
    "FASTPATH",
    "FASTRECEIVE",
    "KIND_MALFORMED",
    "KIND_OTHER",
    "KIND_RTCP",
    "KIND_RTP",
    "GuardedSrtpSession",
    "IdleTrack",
    "ReceivePoller",
    "RtpWriter",
    "SignalledCandidates",
    "bind_ports_in_range",
    "classify",
    "consent_stats",
    "direct_receive_failures",
    "drop_incoming_rtp",
    "guard_ingress",
    "handler_failed",
    "intercept_receiver_rtcp",
    "intercept_rtp",
    "intercept_rtp_data",
    "intercept_sender_rtcp",
    "keep_consent",
    "limit_codecs",
    "local_addresses",
    "log_native_paths",
    "native_paths",
    "negotiated_codecs",
    "negotiated_header_extensions",
    "negotiated_srtp_profile",
    "receive_directly",
    "receiver_rtcp_ssrc",
    "refresh_ssrc_policy",
    "restrict_srtp_profiles",
    "route_by_mid",
    "selected_pair",
    "sender_ssrcs",
    "set_ssrc_policy",
    "srtp_profiles",
    "stop_receiver_reports",
]
