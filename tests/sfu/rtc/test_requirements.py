"""Fails loudly when an aiortc/aioice/asyncio/pylibsrtp upgrade changes the internals
``sfu.rtc`` relies on: every entry of its ``REQUIREMENTS`` table, on the installed
versions."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
from importlib.metadata import version
from typing import Any

import pylibsrtp
import pytest
from aioice.ice import CandidatePair, StunProtocol
from aiortc import RTCPeerConnection

from sfu.rtc import native, requirements
from sfu.rtc.requirements import REQUIREMENTS, Requirement


def resolve(owner: str) -> Any:
    module, _, qualname = owner.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split(".") if qualname else ():
        target = getattr(target, part)
    return target


def parameters(function: Any) -> str:
    names = []
    for parameter in inspect.signature(function).parameters.values():
        prefix = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(
            parameter.kind, ""
        )
        names.append(prefix + parameter.name)
    return ", ".join(names)


async def live_objects() -> tuple[dict[str, Any], list[Any]]:
    """One live instance of every owner whose instance attributes are required (and what
    to close afterwards)."""
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="sendonly")
    dtls = transceiver.sender.transport
    connection = dtls.transport._connection
    loop = asyncio.get_running_loop()
    datagram, protocol = await loop.create_datagram_endpoint(
        lambda: StunProtocol(connection), local_addr=("127.0.0.1", 0)
    )
    pair = CandidatePair(protocol, None)  # type: ignore[arg-type]  # no candidate needed
    policy = pylibsrtp.Policy(
        key=os.urandom(30),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    objects = {
        "aiortc.rtcrtpreceiver:RTCRtpReceiver": transceiver.receiver,
        "aiortc.rtcrtpsender:RTCRtpSender": transceiver.sender,
        "aiortc.rtcrtptransceiver:RTCRtpTransceiver": transceiver,
        "aiortc.rtcdtlstransport:RTCDtlsTransport": dtls,
        "aiortc.rtcdtlstransport:RtpRouter": dtls._rtp_router,
        "aiortc.rtcicetransport:RTCIceTransport": dtls.transport,
        "aioice.ice:Connection": connection,
        "aioice.ice:StunProtocol": protocol,
        "aioice.ice:CandidatePair": pair,
        "asyncio.selector_events:_SelectorDatagramTransport": datagram,
        "pylibsrtp:Session": pylibsrtp.Session(policy),
    }
    return objects, [pc, datagram]


def check(requirement: Requirement, objects: dict[str, Any]) -> None:
    owner = resolve(requirement.owner)
    name = requirement.name
    kind = requirement.kind
    if kind == requirements.ATTRIBUTE:
        assert requirement.owner in objects, f"no live {requirement.owner} to check {name} on"
        live = objects[requirement.owner]
        assert isinstance(live, owner)
        assert hasattr(live, name), "gone"
    elif kind in (requirements.CLASS, requirements.CLASS_ATTRIBUTE):
        assert hasattr(owner, name), "gone"
    elif kind in (requirements.METHOD, requirements.FUNCTION):
        function = getattr(owner, name, None)
        assert callable(function), "gone"
        assert (parameters(function),) == requirement.relied_on
    elif kind == requirements.SOURCE:
        source = inspect.getsource(getattr(owner, name))
        for snippet in requirement.relied_on:
            assert snippet in source, f"no longer contains {snippet!r}"
    else:
        pytest.fail(f"unknown kind {kind!r}")


async def test_every_requirement_holds_on_the_installed_versions() -> None:
    objects, resources = await live_objects()
    failures = []
    try:
        for requirement in REQUIREMENTS:
            try:
                check(requirement, objects)
            except AssertionError as exc:
                where = f"{requirement.owner} {requirement.name} ({requirement.kind})"
                failures.append(f"{where}: {exc}")
    finally:
        await resources[0].close()
        resources[1].close()
    assert not failures, "\n".join(failures)


def test_the_table_names_each_requirement_once() -> None:
    keys = [(r.owner, r.name, r.kind) for r in REQUIREMENTS]
    assert len(keys) == len(set(keys))
    kinds = {
        requirements.METHOD,
        requirements.FUNCTION,
        requirements.ATTRIBUTE,
        requirements.CLASS_ATTRIBUTE,
        requirements.CLASS,
        requirements.SOURCE,
    }
    assert {r.kind for r in REQUIREMENTS} <= kinds


@pytest.mark.parametrize("package", sorted(requirements.PINNED))
def test_aiortc_and_aioice_are_the_pinned_minor_versions(package: str) -> None:
    major, minor = (int(x) for x in version(package).split(".")[:2])
    assert (major, minor) == requirements.PINNED[package], (
        f"re-check sfu/rtc/requirements.py before upgrading {package}"
    )


def test_another_minor_version_is_refused_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requirements, "version", lambda package: "0.99.0")
    with pytest.raises(ImportError, match=r"requirements\.py"):
        requirements.check_versions()


def test_the_compiled_paths_are_in_use_and_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert native.native_paths() == {"fastpath": True, "fastreceive": True}
    assert native.PROBLEMS == {}
    monkeypatch.setattr(native, "_logged", False)
    with caplog.at_level(logging.INFO, logger="sfu.rtc.native"):
        native.log_native_paths()
        native.log_native_paths()  # once per process
    [record] = caplog.records
    assert record.native_paths == {"fastpath": True, "fastreceive": True}  # type: ignore[attr-defined]  # set by extra=


def test_a_changed_pylibsrtp_signature_is_logged_as_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Were pylibsrtp's libsrtp not libsrtp 2, the compiled paths would be off, and the
    worker's start would say why (never silently)."""
    monkeypatch.setattr(native, "SRTP_FUNCTION_TYPE", "int(*)(void)")
    problem = native._forwarding_problem()
    assert problem is not None and "srtp_protect" in problem
    monkeypatch.setattr(native, "PROBLEMS", {"fastpath": problem, "fastreceive": problem})
    monkeypatch.setattr(native, "_logged", False)
    with caplog.at_level(logging.INFO, logger="sfu.rtc.native"):
        native.log_native_paths()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("srtp_protect" in r.getMessage() for r in warnings)


#: Private names too common to tell a library's from Caucus's own objects' by the name.
GENERIC = {"_state", "_ssrc", "_loop", "_queue", "_recv"}


def test_no_code_outside_sfu_rtc_names_the_libraries_private_names() -> None:
    """Production code reaches aiortc/aioice/asyncio/pylibsrtp internals only through
    ``sfu.rtc`` (its accessors in ``sfu/rtc/internals.py``)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[3]
    names = sorted(
        {r.name for r in REQUIREMENTS if r.name.startswith("_") and r.name not in GENERIC}
    )
    pattern = re.compile(r"\b(?!self\.|cls\.)\w+\.(" + "|".join(map(re.escape, names)) + r")\b")
    found = []
    for package in ("sfu", "signaling", "recorder", "client", "bench", "rooms", "certs"):
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if relative.parts[:2] == ("sfu", "rtc"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
