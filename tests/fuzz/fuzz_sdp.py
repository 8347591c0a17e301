"""Fuzz target: the checks a publish offer passes before aiortc applies it.

Every input is the ``sdp`` string of a ``media.publish`` event (bytes decoded as UTF-8,
undecodable bytes kept as lone surrogates, as a JSON string may carry them).  It goes
to ``Transport._check_offer`` of a real publish transport of a real ``sfu.Worker``
(size and section limits, aiortc's ``SessionDescription.parse``, direction, track count
and codec checks), then, when accepted, to ``_declared_ssrcs`` (the SSRCs the ingress
policy learns from it) and to ``read_simulcast`` (its simulcast layers).  The same string
also goes, as a subscriber's answer, to ``answered_transport_cc`` (whether it accepts the
transport-wide sequence number), which must answer yes or no and never raise.

Documented rejections: ``sfu.errors.MediaError`` (``invalid-sdp``,
``no-supported-codec``, the limits; ``InvalidSdp`` from the simulcast reader), which the
signaling layer answers as an error code.  A crash is any other exception, or an
accepted offer over a limit.
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports(include=["sfu", "aiortc.sdp"]):
    from sfu import Worker
    from sfu import transport as transport_module
    from sfu.errors import MediaError
    from sfu.settings import MediaSettings
    from sfu.simulcast_sdp import read_simulcast
    from sfu.transport_cc_sdp import answered_transport_cc

SETTINGS = MediaSettings()


async def publish_transport() -> transport_module.Transport:
    # built as Worker.create_transport builds it, without starting the worker's RTCP loop
    return transport_module.Transport(Worker(SETTINGS), "fuzz", "publish")


TRANSPORT = asyncio.new_event_loop().run_until_complete(publish_transport())


def TestOneInput(data: bytes) -> None:
    sdp = data.decode("utf-8", "surrogateescape")
    for ext_id in (1, 3, 14):
        assert answered_transport_cc(sdp, ext_id) in (True, False)
    try:
        description = TRANSPORT._check_offer(sdp)
    except MediaError as exc:
        assert exc.code and exc.message
        return
    sections = description.media
    assert 0 < len(sections) <= SETTINGS.max_offer_media_sections, len(sections)
    bundled = transport_module._bundled_mids(description)
    active = [m for m in sections if transport_module._is_active(m, bundled)]
    assert len(active) <= SETTINGS.max_tracks_per_publisher, len(active)
    for active_flag, ssrcs, _streams in transport_module._declared_ssrcs(description):
        assert isinstance(active_flag, bool)
        assert all(0 <= ssrc < 1 << 32 for ssrc in ssrcs), ssrcs
    try:
        layers = read_simulcast(sdp, SETTINGS.max_simulcast_layers)
    except MediaError as exc:
        assert exc.code and exc.message
        return
    for mid, section in layers.items():
        assert section.mid == mid
        assert 2 <= len(section.rids) <= SETTINGS.max_simulcast_layers, section
        assert len(set(section.rids)) == len(section.rids) and section.paused <= set(section.rids)
        assert 1 <= section.rid_extension_id <= 255


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
