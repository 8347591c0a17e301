"""Fails loudly when an aiortc/aioice upgrade changes the internals the SFU relies on."""

import inspect
from importlib.metadata import version

from aiortc import RTCPeerConnection

from sfu import aiortc_adapter


def test_aiortc_version_is_the_pinned_one():
    major, minor = (int(x) for x in version("aiortc").split(".")[:2])
    assert (major, minor) == (1, 16), "re-check sfu/aiortc_adapter.py before upgrading aiortc"


def test_private_methods_exist_with_expected_signatures():
    for cls, name in aiortc_adapter.PRIVATE_API:
        assert callable(getattr(cls, name, None)), f"{cls.__name__}.{name} is gone"
    signatures = {
        (cls.__name__, name): list(inspect.signature(getattr(cls, name)).parameters)
        for cls, name in aiortc_adapter.PRIVATE_API
    }
    assert signatures[("RTCRtpReceiver", "_handle_rtp_packet")] == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    assert signatures[("RTCRtpSender", "_handle_rtcp_packet")] == ["self", "packet"]
    assert signatures[("RTCRtpSender", "_send_rtcp")] == ["self", "packets"]
    assert signatures[("RTCDtlsTransport", "_send_rtp")] == ["self", "data"]
    assert signatures[("RTCDtlsTransport", "_handle_rtp_data")] == [
        "self",
        "data",
        "arrival_time_ms",
    ]


async def test_private_attributes_exist_on_live_objects():
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="sendonly")
    dtls = transceiver.sender.transport
    objects = {
        type(transceiver.sender): transceiver.sender,
        type(transceiver): transceiver,
        type(dtls): dtls,
    }
    for cls, names in aiortc_adapter.PRIVATE_INSTANCE_ATTRIBUTES.items():
        for name in names:
            assert hasattr(objects[cls], name), f"{cls.__name__}.{name} is gone"
    # aioice internals used by RtpWriter and drop_incoming_rtp
    ice = dtls.transport
    assert hasattr(ice, "_recv")
    assert isinstance(ice._connection._nominated, dict)
    assert "SRTP_AEAD_AES_128_GCM" in [
        p.openssl_profile.decode() for p in aiortc_adapter.srtp_profiles(["SRTP_AEAD_AES_128_GCM"])
    ]
    await pc.close()


def test_stun_protocol_sends_with_a_datagram_transport():
    from aioice.ice import CandidatePair, StunProtocol

    assert "transport" in inspect.getsource(StunProtocol.connection_made)
    assert "remote_addr" in dir(CandidatePair)
