"""Runs every fuzz target of this folder (``fuzz_<name>.py``) for a while, and replays
every seed of ``corpus/<name>/`` through its target in this process.

A target runs as its own process under libFuzzer (atheris) for ``CAUCUS_FUZZ_SECONDS``
(default 8 s under CI, 3 s otherwise) on a copy of its seed corpus, two targets at a
time; any crash fails its test with the input that crashed it (see docs/security.md,
"Fuzzing and property tests").  ``fuzz_<name>.options`` (OSS-Fuzz's format, a
``[libfuzzer]`` section) adds libFuzzer flags for one target.
"""

from __future__ import annotations

import configparser
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import atheris
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"
TARGETS = sorted(HERE.glob("fuzz_*.py"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECONDS = int(os.environ.get("CAUCUS_FUZZ_SECONDS", "8" if IN_CI else "3"))
#: Targets run side by side (the CI machine has two cores).
PARALLEL = int(os.environ.get("CAUCUS_FUZZ_JOBS", "2"))


def target_name(path: Path) -> str:
    return path.stem.removeprefix("fuzz_")


def seeds() -> list[tuple[Path, Path]]:
    return [
        (target, seed)
        for target in TARGETS
        for seed in sorted((CORPUS / target_name(target)).glob("*"))
        if seed.is_file()
    ]


def test_every_target_has_seeds() -> None:
    assert TARGETS, "no fuzz targets found"
    for target in TARGETS:
        corpus = CORPUS / target_name(target)
        assert any(corpus.glob("*")), f"{target.name} has no seeds in {corpus}"


def libfuzzer_options(target: Path) -> list[str]:
    options = target.with_suffix(".options")
    if not options.exists():
        return []
    parser = configparser.ConfigParser()
    parser.read(options)
    if not parser.has_section("libfuzzer"):
        return []
    return [f"-{key}={value}" for key, value in parser.items("libfuzzer")]


@dataclass
class Run:
    """One target's fuzzing run: its exit status, output and crash files."""

    returncode: int
    output: str
    artifacts: list[Path]
    seconds: int


def run_target(target: Path, workdir: Path) -> Run:
    corpus = workdir / "corpus"
    shutil.copytree(CORPUS / target_name(target), corpus)
    artifacts = workdir / "artifacts"
    artifacts.mkdir()
    command = [
        sys.executable,
        str(target),
        f"-max_total_time={SECONDS}",
        "-timeout=30",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        *libfuzzer_options(target),
        str(corpus),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
    }
    done = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=SECONDS + 120,
        check=False,
    )
    return Run(done.returncode, done.stdout, sorted(artifacts.iterdir()), SECONDS)


class FuzzPool:
    """Starts the selected targets' runs, ``PARALLEL`` at a time, in test order."""

    def __init__(self, targets: list[Path], tmp: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=PARALLEL)
        self._lock = threading.Lock()
        self._tmp = tmp
        self._runs: dict[Path, Future[Run]] = {}
        for target in targets:
            self._start(target)

    def _start(self, target: Path) -> Future[Run]:
        with self._lock:
            if target not in self._runs:
                workdir = self._tmp / target_name(target)
                workdir.mkdir()
                self._runs[target] = self._executor.submit(run_target, target, workdir)
            return self._runs[target]

    def result(self, target: Path) -> Run:
        return self._start(target).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def fuzz_pool(request, tmp_path_factory):
    selected = []
    for item in request.session.items:
        if getattr(item, "originalname", None) == "test_target_survives_fuzzing":
            selected.append(item.callspec.params["target"])
    pool = FuzzPool(selected, tmp_path_factory.mktemp("fuzz"))
    yield pool
    pool.close()


def crash_report(target: Path, run: Run) -> str:
    lines = [f"{target.name} crashed (exit {run.returncode}) within {run.seconds} s."]
    for artifact in run.artifacts:
        data = artifact.read_bytes()
        lines.append(f"input: {artifact} ({len(data)} bytes): {data[:300]!r}")
    lines.append(
        "Replay: .venv/bin/python " + str(target.relative_to(ROOT)) + " <input>; once fixed, "
        f"copy the input to tests/fuzz/corpus/{target_name(target)}/ as a regression seed."
    )
    tail = run.output.splitlines()[-60:]
    return "\n".join([*lines, "--- output (end) ---", *tail])


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("target", TARGETS, ids=[t.stem for t in TARGETS])
def test_target_survives_fuzzing(target: Path, fuzz_pool: FuzzPool) -> None:
    run = fuzz_pool.result(target)
    assert run.returncode == 0 and not run.artifacts, crash_report(target, run)
    assert "Done " in run.output, run.output[-3000:]


_modules: dict[Path, ModuleType] = {}


def load_target(target: Path) -> ModuleType:
    """Import a target in this process, without instrumenting what it imports (this
    process runs other tests with those modules)."""
    if target not in _modules:
        spec = importlib.util.spec_from_file_location(f"caucus_{target.stem}", target)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        original = atheris.instrument_imports
        atheris.instrument_imports = lambda *args, **kwargs: contextlib.nullcontext()
        try:
            spec.loader.exec_module(module)
        finally:
            atheris.instrument_imports = original
        _modules[target] = module
    return _modules[target]


@pytest.mark.parametrize(
    ("target", "seed"), seeds(), ids=[f"{t.stem}/{s.name}" for t, s in seeds()]
)
def test_seed_replays(target: Path, seed: Path) -> None:
    module = load_target(target)
    module.TestOneInput(seed.read_bytes())
