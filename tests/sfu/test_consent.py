"""ICE consent freshness (RFC 7675): a connection whose consent answers wait behind
received media (an SFU that is seconds behind on its socket under CPU load) stays open;
one whose peer stops answering closes once consent expires."""

import time

import pytest

from client import LocalSignal
from sfu import MediaSettings, Worker
from tests.support.eventually import eventually
from tests.support.media import participant
from tests.support.rtp_tools import delay_incoming

INTERVAL = 0.3
EXPIRY = 2.0
#: Longer than aioice's single-shot consent timeout (0.5 s), well inside the expiry.
BACKLOG = 0.8


@pytest.fixture
async def publish_transport():
    worker = Worker(MediaSettings(consent_interval=INTERVAL, consent_expiry=EXPIRY))
    publisher = participant("publisher", LocalSignal(worker, "room"), audio=False)
    try:
        await publisher.join()
        transport = next(worker.transports_of("publisher", "publish"))
        await eventually(lambda: transport.connection_state == "connected", 10)
        await eventually(lambda: transport.stats()["packets_received"] > 0, 10)
        yield transport
    finally:
        await publisher.close()
        await worker.close()


def consent(transport) -> tuple[int, int]:
    return transport.stats()["consent"]


async def test_late_consent_answers_keep_a_transport_open(publish_transport):
    transport = publish_transport
    delay_incoming(transport._writer.dtls, BACKLOG)
    _, answered_before = consent(transport)
    packets_before = transport.stats()["packets_received"]
    start = time.monotonic()
    # three expiry periods in which every answer arrives 0.8 s after its request
    await eventually(
        lambda: transport.closed or time.monotonic() - start >= 3 * EXPIRY, 3 * EXPIRY + 5
    )
    requests, answered = consent(transport)
    assert not transport.closed and transport.connection_state == "connected"
    assert answered - answered_before >= 3 * EXPIRY / (1.2 * INTERVAL) - 3, (requests, answered)
    assert transport.stats()["packets_received"] > packets_before


async def test_consent_expires_when_the_peer_stops_answering(publish_transport):
    transport = publish_transport
    delay_incoming(transport._writer.dtls, None)
    silent = time.monotonic()
    await eventually(lambda: transport.closed, EXPIRY + 2 * INTERVAL + 5)
    assert EXPIRY - 1.2 * INTERVAL <= time.monotonic() - silent
