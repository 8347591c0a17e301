"""A signaling node never loads the media stack: aiortc, PyAV and their transports are
imported by media workers (and by a node hosting media itself, ``--workers 0``) only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What a node with media workers imports: the HTTP app, the socket.io namespaces (the
#: media ones to declare their events), the cluster gateway and the command line.
NODE_MODULES = (
    "signaling.http.app",
    "signaling.realtime.compose",
    "signaling.realtime.namespaces.case",
    "signaling.realtime.namespaces.spaces",
    "signaling.realtime.namespaces.media",
    "signaling.realtime.namespaces.live",
    "signaling.realtime.namespaces.recording",
    "signaling.realtime.namespaces.forwarding",
    "signaling.cluster.gateway",
    "signaling.cluster.supervisor",
    "signaling.cluster.node_bus",
    "signaling.cli.main",
)
MEDIA_STACK = ("aiortc", "av", "aioice", "pylibsrtp")

CHILD = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in {stack!r} if m in sys.modules)))
"""


def test_a_node_imports_neither_aiortc_nor_pyav() -> None:
    child = CHILD.format(modules=NODE_MODULES, stack=MEDIA_STACK)
    result = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_media_worker_does() -> None:
    """The check above would pass if nothing could load them: the media host does."""
    child = CHILD.format(modules=("signaling.cluster.media_host",), stack=MEDIA_STACK)
    result = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == sorted(MEDIA_STACK)
