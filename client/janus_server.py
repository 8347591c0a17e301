"""A Janus WebRTC server for side-by-side measurements: configured, started and stopped.

    async with JanusServer() as janus:          # raises JanusMissing without ``janus``
        signal = JanusSignal(janus.url, room)   # client/janus.py

:func:`write_config` writes a configuration into a directory of its own, every setting
named (nothing comes from ``/etc/janus``):

* only the VideoRoom plugin and the HTTP transport are loaded: every other plugin,
  transport, event handler and logger found in Janus's folders is on a ``disable`` list,
  and event handlers are off (``broadcast = false``);
* the HTTP transport listens on 127.0.0.1 on a free port (plain HTTP, no admin API);
* ``event_loops`` = the number of cores: Janus's media threads are a fixed pool, as
  many as Caucus would run media worker processes on this machine (``caucus serve``'s
  default), handles spread over them;
* ICE: host candidates on one address of this host, IPv4, no STUN, no TURN, no 1:1 NAT,
  no ICE-TCP, half-trickle (the default).  Janus never gathers on a loopback interface
  (``ice_enforce_list = "lo"`` or ``"127.0.0.1"`` leaves libnice with no address, and it
  then gathers on every other interface, IPv6 link-local included), so the list holds the
  host's own IPv4 address, the one aiortc gathers on too (:func:`local_address`): the
  kernel delivers datagrams to a local address through the loopback device (``ip route
  get`` says ``local ... dev lo``), so nothing leaves the machine, as between aiortc and
  Caucus;
* logging at level 3 (warnings and errors) to a file in the directory, no colours; no
  recording (rooms are created through the API with ``record: false``);
* everything else (NACK queue, TWCC period, DTLS timeout, no-media timer) is Janus's
  default.

The ``janus`` binary is Debian's ``janus`` package (``apt-get install janus``):
:func:`janus_binary` finds it on ``PATH`` and :class:`JanusMissing` says how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType

import aiohttp

log = logging.getLogger(__name__)

INSTALL_HINT = "Janus is not installed: apt-get install janus"
PLUGIN = "libjanus_videoroom.so"
TRANSPORT = "libjanus_http.so"
#: Where Debian's package (any architecture) and a source build put Janus's modules.
_MODULE_ROOTS = (
    "/usr/lib/*/janus",
    "/usr/lib/janus",
    "/usr/local/lib/janus",
    "/opt/janus/lib/janus",
)


class JanusMissing(RuntimeError):
    """``janus`` is not on ``PATH``."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def janus_binary() -> str:
    """The ``janus`` executable on ``PATH``; :class:`JanusMissing` when there is none."""
    found = shutil.which("janus")
    if found is None:
        raise JanusMissing()
    return found


def module_root() -> Path:
    """The folder holding Janus's ``plugins``, ``transports``, ``events`` and ``loggers``."""
    for pattern in _MODULE_ROOTS:
        for candidate in sorted(Path("/").glob(pattern.lstrip("/"))):
            if (candidate / "plugins" / PLUGIN).exists():
                return candidate
    raise RuntimeError(f"Janus's plugins folder (with {PLUGIN}) was not found")


def local_address() -> str:
    """The host's first IPv4 address that is not a loopback one, as aiortc (aioice)
    gathers it; ``127.0.0.1`` on a host without one (then neither side connects)."""
    from aioice.ice import get_host_addresses

    addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    return addresses[0] if addresses else "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _others(folder: Path, keep: str | None = None) -> str:
    """Every module file of ``folder`` but ``keep``, as a ``disable`` list."""
    names = sorted(p.name for p in folder.glob("libjanus_*.so")) if folder.is_dir() else []
    return ",".join(name for name in names if name != keep)


def write_config(
    directory: Path, port: int, event_loops: int | None = None, address: str | None = None
) -> Path:
    """Write Janus's configuration for a loopback benchmark into ``directory``; returns
    the path of ``janus.jcfg`` (the other files sit next to it)."""
    root = module_root()
    loops = event_loops or os.cpu_count() or 1
    ice_address = address or local_address()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "janus.jcfg").write_text(
        f"""general: {{
	configs_folder = "{directory}"
	plugins_folder = "{root / "plugins"}"
	transports_folder = "{root / "transports"}"
	events_folder = "{root / "events"}"
	loggers_folder = "{root / "loggers"}"
	log_to_stdout = false
	log_to_file = "{directory / "janus.log"}"
	debug_level = 3
	debug_colors = false
	interface = "{ice_address}"
	session_timeout = 60
	event_loops = {loops}
	hide_dependencies = true
	exit_on_dl_error = true
}}
certificates: {{
}}
media: {{
	ipv6 = false
}}
nat: {{
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	ice_enforce_list = "{ice_address}"
}}
plugins: {{
	disable = "{_others(root / "plugins", PLUGIN)}"
}}
transports: {{
	disable = "{_others(root / "transports", TRANSPORT)}"
}}
loggers: {{
	disable = "{_others(root / "loggers")}"
}}
events: {{
	broadcast = false
	disable = "{_others(root / "events")}"
}}
"""
    )
    (directory / "janus.transport.http.jcfg").write_text(
        f"""general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
"""
    )
    # no static rooms: the benchmark and the tests create theirs through the API
    (directory / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return directory / "janus.jcfg"


class JanusServer:
    """A ``janus`` process with :func:`write_config`'s configuration, in a temporary
    directory of its own; :attr:`url` is the Janus API's base URL (``http://127.0.0.1:
    <port>/janus``) and :attr:`pid` the process to measure."""

    def __init__(
        self,
        event_loops: int | None = None,
        start_timeout: float = 20.0,
        cpus: str | None = None,
    ) -> None:
        """``cpus`` pins the process to those cores (``taskset -c``, e.g. ``"0"``)."""
        self._event_loops = event_loops
        self._cpus = cpus
        self._start_timeout = start_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.url = ""
        self.directory: Path | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        """The end of Janus's log (warnings and errors), for an error message."""
        if self.directory is None:
            return ""
        path = self.directory / "janus.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    async def start(self) -> None:
        binary = janus_binary()
        self._tmp = tempfile.TemporaryDirectory(prefix="caucus-janus-")
        self.directory = Path(self._tmp.name)
        self.port = free_port()
        config = write_config(self.directory, self.port, self._event_loops)
        self.url = f"http://127.0.0.1:{self.port}/janus"
        pin = ["taskset", "-c", self._cpus] if self._cpus and shutil.which("taskset") else []
        self.process = await asyncio.create_subprocess_exec(
            *pin,  # taskset executes janus in its own process: the pid stays Janus's
            binary,
            "-C",
            str(config),
            "-F",
            str(self.directory),
            "-N",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=self.directory,
        )
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._wait_ready()
        except BaseException:
            tail = self.log_tail()
            await self.stop()
            raise RuntimeError(f"Janus did not start: {tail}") from None
        log.info("janus started", extra={"pid": self.pid, "url": self.url})

    async def _wait_ready(self) -> None:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"janus exited with {self.process.returncode}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with http.get(self.url + "/info") as response:
                        if response.status == 200:
                            info = await response.json(content_type=None)
                            if "janus.plugin.videoroom" in info.get("plugins", {}):
                                return
                            raise RuntimeError(f"no VideoRoom plugin: {info.get('plugins')}")
                await asyncio.sleep(0.1)  # a process starting: polling is the way to wait

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> JanusServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
