"""The media-path attacks replayed against a real server, ``caucus serve``, in one process
(``--workers 0``) and with the default media worker processes (one per core): an outsider's
datagrams to every media port, a member's media-section flood over socket.io, and a
member's SSRC churn inside their own session.  The people of the case keep decoding."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from client import SignalError
from client.loadtest_setup import ApiSession
from sfu.rtc.internals import nominated_pair
from tests.signaling.cluster_nodes import NEW_ADMIN_PASSWORD, one_case, people_in, running_nodes

from .media_support import MediaWatch, raw_writer, rtp, send_datagrams


def _sfu_address(pc) -> tuple[str, int]:
    """The SFU's end of ``pc``'s nominated ICE pair."""
    dtls = pc.getTransceivers()[0].sender.transport
    pair = nominated_pair(dtls)
    return tuple(pair.remote_addr[:2])


async def _metrics(url: str) -> str:
    async with ApiSession(url, insecure=True) as admin:
        await admin.sign_in("admin", NEW_ADMIN_PASSWORD)
        return await admin.text("/metrics")


def _refused(metrics: str, reason: str) -> float:
    prefix = f'caucus_media_ingress_refused_total{{reason="{reason}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


#: ``caucus serve``'s default: one media worker process per core.
DEFAULT_WORKERS = os.cpu_count() or 1


@pytest.mark.parametrize("workers", [0, DEFAULT_WORKERS], ids=["workers-0", "default-workers"])
async def test_attacks_on_a_served_session(tmp_path: Path, workers: int) -> None:
    async with running_nodes(tmp_path / "data", ("solo",), workers=workers, redis_url=None) as (
        node,
    ):
        accounts = await one_case(node, 2)
        async with people_in([node], accounts) as people:
            neutral, paula, mallory = people
            async with asyncio.timeout(30):
                while not (  # noqa: ASYNC110
                    neutral.frames_from_all(2, "video") and paula.frames_from_all(2, "video")
                ):
                    await asyncio.sleep(0.1)
            watches = [MediaWatch(neutral), MediaWatch(paula)]
            for watch in watches:
                watch.start()

            # an outsider: garbage and oversized datagrams to every media port in use
            addresses = sorted(
                {_sfu_address(pc) for p in people for pc in (p._publish_pc, p._subscribe_pc)}
            )
            datagrams = [
                b"\x80\xc8" + os.urandom(1499),
                b"\x80\x60" + os.urandom(1700),
                b"",
                os.urandom(300),
            ]
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                send_datagrams(addresses, datagrams)
                await asyncio.sleep(0.02)

            # a member: a new SSRC on every packet of their own session
            writer = raw_writer(mallory._publish_pc)
            for i in range(3000):
                writer.write_rtp(rtp(0x30000000 + i, i, 96, os.urandom(188)))
                if i % 100 == 0:
                    await asyncio.sleep(0.005)
            async with asyncio.timeout(20):
                while _refused(await _metrics(node.url), "unknown_ssrc") < 500:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)

            # a member: a thousand media sections in one publish offer (refused; the
            # refusal closes the publish connection it was offered on, the attacker's own)
            head = mallory._publish_pc.localDescription.sdp.partition("m=")[0]
            section = (
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
                "a=mid:{}\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"
            )
            flood = head + "".join(section.format(i) for i in range(1000))
            with pytest.raises(SignalError) as info:
                await mallory.signal.publish(flood)
            assert info.value.code == "too_many_media_sections"

            for watch in watches:
                await watch.stop()
            # media workers report their counters to the node every few seconds
            async with asyncio.timeout(20):
                while True:
                    metrics = await _metrics(node.url)
                    if _refused(metrics, "oversize") > 0 and _refused(metrics, "empty") > 0:
                        break
                    await asyncio.sleep(0.2)
            assert not neutral.endings and not paula.endings
            for watch in watches:
                assert watch.longest_stall < 1.0, watch.longest_stall
                assert watch.received > 30
