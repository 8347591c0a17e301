"""What ``sfu.rtc`` relies on below the public APIs of aiortc, aioice, asyncio and
pylibsrtp: one table, :data:`REQUIREMENTS`, that ``tests/sfu/rtc/test_requirements.py``
walks on the installed versions, and the versions it was checked against
(:data:`PINNED`, asserted when ``sfu.rtc`` is imported; pyproject.toml pins the same).

Each :class:`Requirement` names its owner (a module, or a class as ``module:Class``),
the name used, its kind, and what is relied on: a method's parameter names, or source
snippets the owner's code must still contain (a method whose behaviour is copied or
replaced).  Before upgrading one of these libraries, re-read the code that uses the
names below and update the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

#: The minor versions the boundary was written and checked against.
PINNED: dict[str, tuple[int, int]] = {"aiortc": (1, 16), "aioice": (0, 13)}

#: Kinds of requirement.
METHOD = "method"  # a callable on the owner class: exists, parameter names as given
FUNCTION = "function"  # a module-level callable
ATTRIBUTE = "attribute"  # set on instances (``__init__``, handshake): checked on a live object
CLASS_ATTRIBUTE = "class attribute"  # on the class itself (property, constant)
CLASS = "class"  # a class or constant of a module
SOURCE = "source"  # the owner's method ``name`` still contains each snippet


@dataclass(frozen=True)
class Requirement:
    """One private (or internal) name of a library that ``sfu.rtc`` relies on."""

    owner: str
    name: str
    kind: str
    #: METHOD/FUNCTION: the parameter names, comma-separated; SOURCE: snippets.
    relied_on: tuple[str, ...] = ()
    #: Where in ``sfu.rtc`` (or the load client through an accessor) it is used.
    used_by: str = ""


def _r(owner: str, name: str, kind: str, *relied_on: str, used_by: str = "") -> Requirement:
    return Requirement(owner, name, kind, tuple(relied_on), used_by)


_RECEIVER = "aiortc.rtcrtpreceiver:RTCRtpReceiver"
_SENDER = "aiortc.rtcrtpsender:RTCRtpSender"
_TRANSCEIVER = "aiortc.rtcrtptransceiver:RTCRtpTransceiver"
_DTLS = "aiortc.rtcdtlstransport:RTCDtlsTransport"
_ROUTER = "aiortc.rtcdtlstransport:RtpRouter"
_ICE = "aiortc.rtcicetransport:RTCIceTransport"
_CONNECTION = "aioice.ice:Connection"
_STUN = "aioice.ice:StunProtocol"
_PAIR = "aioice.ice:CandidatePair"
_DATAGRAM = "asyncio.selector_events:_SelectorDatagramTransport"
_LOOP = "asyncio.selector_events:BaseSelectorEventLoop"
_SESSION = "pylibsrtp:Session"

REQUIREMENTS: tuple[Requirement, ...] = (
    # --- aiortc: receivers and senders (hooks.py) -------------------------------------
    _r(_RECEIVER, "_handle_rtp_packet", METHOD, "self, packet, arrival_time_ms", used_by="hooks"),
    _r(_RECEIVER, "_handle_rtcp_packet", METHOD, "self, packet", used_by="hooks, guard"),
    _r(_RECEIVER, "_run_rtcp", METHOD, "self", used_by="hooks"),
    _r(_RECEIVER, "_RTCRtpReceiver__rtcp_task", ATTRIBUTE, used_by="hooks"),
    _r(_RECEIVER, "_RTCRtpReceiver__rtcp_started", ATTRIBUTE, used_by="hooks"),
    _r(_RECEIVER, "_RTCRtpReceiver__rtcp_exited", ATTRIBUTE, used_by="hooks"),
    _r(_SENDER, "_handle_rtcp_packet", METHOD, "self, packet", used_by="hooks"),
    _r(_SENDER, "_send_rtcp", METHOD, "self, packets", used_by="hooks"),
    _r(_SENDER, "_run_rtcp", METHOD, "self", used_by="hooks"),
    _r(_SENDER, "_ssrc", ATTRIBUTE, used_by="hooks"),
    _r(_SENDER, "_rtx_ssrc", ATTRIBUTE, used_by="hooks"),
    _r(_SENDER, "_RTCRtpSender__rtcp_task", ATTRIBUTE, used_by="hooks"),
    _r(_SENDER, "_RTCRtpSender__rtcp_started", ATTRIBUTE, used_by="hooks"),
    _r(_SENDER, "_RTCRtpSender__rtcp_exited", ATTRIBUTE, used_by="hooks"),
    _r(_TRANSCEIVER, "_codecs", ATTRIBUTE, used_by="hooks"),
    _r(_TRANSCEIVER, "_headerExtensions", ATTRIBUTE, used_by="hooks"),
    # --- aiortc: the DTLS transport and its router -------------------------------------
    _r(_DTLS, "_srtp_profiles", ATTRIBUTE, used_by="srtp"),
    _r(_DTLS, "_ssl", ATTRIBUTE, used_by="srtp"),
    _r(_DTLS, "_tx_srtp", ATTRIBUTE, used_by="writer"),
    _r(_DTLS, "_rx_srtp", ATTRIBUTE, used_by="receive, guard, routing"),
    _r(_DTLS, "_state", ATTRIBUTE, used_by="receive, writer"),
    _r(_DTLS, "_rtp_router", ATTRIBUTE, used_by="receive, guard, routing"),
    _r(_DTLS, "_rtp_header_extensions_map", ATTRIBUTE, used_by="receive, guard, hooks"),
    _r(_DTLS, "_handle_rtp_data", METHOD, "self, data, arrival_time_ms", used_by="guard"),
    _r(_DTLS, "_handle_rtcp_data", METHOD, "self, data", used_by="guard"),
    _r(
        _DTLS,
        "_handle_rtp_data",
        SOURCE,
        "RtpPacket.parse(data, self._rtp_header_extensions_map)",
        "self._rtp_router.route_rtp(packet)",
        "receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)",
        used_by="receive (the direct path does what it does), guard",
    ),
    _r(
        _DTLS,
        "_recv_next",
        SOURCE,
        "first_byte > 127 and first_byte < 192 and self._rx_srtp",
        "is_rtcp(data)",
        "data = self._rx_srtp.unprotect(data)",
        "arrival_time_ms = clock.current_ms()",
        "await self.transport._recv()",
        used_by="receive, guard (it awaits the replaced handlers and ICE _recv)",
    ),
    _r("aiortc.rtcdtlstransport", "State", CLASS, used_by="internals"),
    _r("aiortc.rtcdtlstransport", "SRTP_PROFILES", CLASS, used_by="srtp"),
    _r("aiortc.rtcdtlstransport", "SRTPProtectionProfile", CLASS, used_by="srtp"),
    _r("aiortc.rtcdtlstransport", "RtpRouter", CLASS, used_by="internals"),
    _r(_ROUTER, "ssrc_table", ATTRIBUTE, used_by="receive, routing"),
    _r(_ROUTER, "payload_type_table", ATTRIBUTE, used_by="receive, routing"),
    _r(_ROUTER, "mid_table", ATTRIBUTE, used_by="routing"),
    _r(_ROUTER, "register_sender", METHOD, "self, sender, ssrc", used_by="client.simulcast"),
    _r(_ROUTER, "route_rtp", METHOD, "self, packet", used_by="receive, guard, routing"),
    _r(_ROUTER, "route_rtcp", METHOD, "self, packet", used_by="guard"),
    _r(
        _ROUTER,
        "route_rtp",
        SOURCE,
        "self.ssrc_table.get(packet.ssrc)",
        "self.payload_type_table.get(packet.payload_type, set())",
        "ssrc_receiver in pt_receivers",
        used_by="receive (looks the tables up as route_rtp does)",
    ),
    _r("aiortc.clock", "current_ms", FUNCTION, "", used_by="receive (NTP-epoch arrival times)"),
    # --- aiortc: the ICE transport -----------------------------------------------------
    _r(_ICE, "_connection", ATTRIBUTE, used_by="internals.ice_connection"),
    _r(_ICE, "_recv", ATTRIBUTE, used_by="internals.wrap_ice_recv"),
    # --- aioice ------------------------------------------------------------------------
    _r(_CONNECTION, "_nominated", ATTRIBUTE, used_by="writer, consent, ice"),
    _r(_CONNECTION, "_protocols", ATTRIBUTE, used_by="receive, ports"),
    _r(_CONNECTION, "_queue", ATTRIBUTE, used_by="receive"),
    _r(_CONNECTION, "remote_password", ATTRIBUTE, used_by="consent"),
    _r(_CONNECTION, "stun_server", ATTRIBUTE, used_by="ports"),
    _r(_CONNECTION, "turn_server", ATTRIBUTE, used_by="ports"),
    _r(_CONNECTION, "build_request", METHOD, "self, pair, nominate", used_by="consent"),
    _r(_CONNECTION, "close", METHOD, "self", used_by="consent"),
    _r(_CONNECTION, "query_consent", METHOD, "self", used_by="consent (replaced per instance)"),
    _r(_CONNECTION, "connect", SOURCE, "self.query_consent()", used_by="consent"),
    _r(_CONNECTION, "close", SOURCE, "self._query_consent_task", used_by="consent"),
    _r(
        _CONNECTION,
        "get_component_candidates",
        METHOD,
        "self, component, addresses, timeout",
        used_by="ports (replaced per instance)",
    ),
    _r(
        _CONNECTION,
        "get_component_candidates",
        SOURCE,
        "local_addr=(address, 0)",
        "self._protocols += host_protocols",
        "turn.UDP_SOCKET_BUFFER_SIZE",
        "protocol.local_candidate = Candidate(",
        used_by="ports (binds as it does, but for the port)",
    ),
    _r(
        _CONNECTION,
        "gather_candidates",
        SOURCE,
        "self.get_component_candidates(component=component, addresses=addresses)",
        "self._local_candidates += candidates",
        used_by="ports",
    ),
    _r(
        _CONNECTION,
        "data_received",
        SOURCE,
        "self._queue.put_nowait((data, component))",
        used_by="receive",
    ),
    _r(
        _STUN,
        "datagram_received",
        SOURCE,
        "self.receiver.data_received(data, self.local_candidate.component)",
        "self.transactions[message.transaction_id]",
        "response_received(message, addr)",
        used_by="receive (replaced per instance), consent",
    ),
    _r(_STUN, "datagram_received", METHOD, "self, data, addr", used_by="receive"),
    _r(_STUN, "connection_made", SOURCE, "transport", used_by="writer (the pair's transport)"),
    _r(_STUN, "send_stun", METHOD, "self, message, addr", used_by="consent"),
    _r(_STUN, "transactions", ATTRIBUTE, used_by="consent"),
    _r(_PAIR, "remote_addr", CLASS_ATTRIBUTE, used_by="writer, consent"),
    _r(_PAIR, "protocol", ATTRIBUTE, used_by="writer, consent"),
    _r("aioice.turn", "UDP_SOCKET_BUFFER_SIZE", CLASS, used_by="ports"),
    _r(
        "aioice.candidate",
        "candidate_foundation",
        FUNCTION,
        "candidate_type, candidate_transport, base_address",
        used_by="ports",
    ),
    _r(
        "aioice.candidate",
        "candidate_priority",
        FUNCTION,
        "candidate_component, candidate_type, local_pref",
        used_by="ports",
    ),
    # --- asyncio's selector datagram transport and event loop --------------------------
    _r(_DATAGRAM, "_sock", ATTRIBUTE, used_by="internals.datagram_socket (writer, receive)"),
    _r(_DATAGRAM, "_loop", ATTRIBUTE, used_by="internals (the load client's poller)"),
    _r(_DATAGRAM, "_read_ready", METHOD, "self", used_by="internals.resume_reading"),
    _r(_LOOP, "_remove_reader", METHOD, "self, fd", used_by="internals.stop_reading"),
    _r(
        _LOOP,
        "_add_reader",
        METHOD,
        "self, fd, callback, *args",
        used_by="internals.resume_reading",
    ),
    # --- pylibsrtp ---------------------------------------------------------------------
    _r(_SESSION, "_srtp", ATTRIBUTE, used_by="internals.srtp_context (writer, receive)"),
    _r("pylibsrtp._binding", "ffi", CLASS, used_by="native"),
    _r("pylibsrtp._binding", "lib", CLASS, used_by="native (srtp_protect, srtp_unprotect)"),
    _r("pylibsrtp", "SRTP_MAX_TRAILER_LEN", CLASS, used_by="native"),
)


def _minor(package: str) -> tuple[int, int]:
    major, minor = (int(part) for part in version(package).split(".")[:2])
    return major, minor


def check_versions() -> None:
    """Raise ``ImportError`` when an installed aiortc or aioice is not the minor version
    :data:`REQUIREMENTS` was checked against."""
    for package, pinned in PINNED.items():
        installed = _minor(package)
        if installed != pinned:
            raise ImportError(
                f"sfu.rtc relies on {package} {pinned[0]}.{pinned[1]} internals "
                f"(sfu/rtc/requirements.py); {version(package)} is installed"
            )
