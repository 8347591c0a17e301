"""A node whose media runs in worker processes declares and checks the same events as a
single-process node: the forwarding namespaces stand for the real ones event by event."""

from __future__ import annotations

from signaling.cluster.gateway import MediaCluster
from signaling.cluster.placement import MemoryDirectory
from signaling.http.app import build_app
from signaling.http.state import NAMESPACES
from signaling.realtime.events import EventNamespace
from signaling.realtime.namespaces.forwarding import ForwardingNamespace
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.realtime.namespaces.recording import RecordingNamespace
from signaling.services import Services


def declared(namespace: EventNamespace) -> dict[str, tuple[object, ...]]:
    return {
        name: (spec.model, spec.rule.kind, tuple(sorted(spec.rule.case_roles)))
        for name, spec in namespace.events.items()
    }


async def test_forwarding_namespaces_declare_what_they_stand_for(services: Services) -> None:
    cluster = MediaCluster(services, MemoryDirectory(), "a secret of sixteen+ chars")
    app = build_app(services, cluster)
    by_name = {n.namespace: n for n in app[NAMESPACES]}
    local = build_app(services)
    local_by_name = {n.namespace: n for n in local[NAMESPACES]}
    assert by_name.keys() == local_by_name.keys()
    for name, real in (("/media", MediaNamespace), ("/recording", RecordingNamespace)):
        forwarding = by_name[name]
        assert isinstance(forwarding, ForwardingNamespace)
        assert isinstance(local_by_name[name], real)
        assert declared(forwarding) == declared(local_by_name[name])
        assert len(forwarding.events) >= 3
    await cluster.close()
