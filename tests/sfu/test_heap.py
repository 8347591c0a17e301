"""The server's, workers' and load client's collector settings (sfu.heap): what was
imported at start-up is frozen out of every collection, the young generation is
collected less often, and objects made afterwards are still collected.  Run in a child
process: freezing the test process's heap would outlive the test."""

import json
import subprocess
import sys
from pathlib import Path

from sfu.heap import THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json, weakref
import signaling.cli.main  # the server's, the workers' and the load client's imports
from sfu.heap import freeze_startup_heap

frozen = freeze_startup_heap()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after start-up
alive = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"frozen": frozen, "count": gc.get_freeze_count(),
                  "thresholds": gc.get_threshold(), "cycle_collected": alive() is None}))
"""


def test_startup_heap_is_frozen_and_later_cycles_are_still_collected() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["frozen"] > 50_000  # modules, classes, functions of the imports
    assert figures["count"] == figures["frozen"]
    assert tuple(figures["thresholds"]) == THRESHOLDS
    assert figures["cycle_collected"]
