"""The ``caucus`` command: run a server and administer it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import signal
import sys
from pathlib import Path

from aiohttp import web

from certs.authority import load_certificate
from rooms import __version__
from rooms.errors import CaucusError
from rooms.vault.masterkey import MasterKeyError
from sfu.heap import freeze_startup_heap
from signaling.cli import agreements, loadtest
from signaling.cli.logconfig import configure_logging
from signaling.cluster.gateway import MediaCluster
from signaling.cluster.placement import RedisDirectory, directory_for
from signaling.cluster.supervisor import WorkerSupervisor
from signaling.http.app import build_app
from signaling.http.state import MAIL_SENDER
from signaling.services import Services
from signaling.settings import Settings, load_settings

log = logging.getLogger("caucus")
SHUTDOWN_SECONDS = 5.0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (default ./caucus-data; CAUCUS_DATA_DIR)"
    )
    parser.add_argument(
        "--database-url",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: SQLite in the data "
        "directory; CAUCUS_DATABASE_URL)",
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caucus",
        description="Caucus: online dispute resolution with live rooms and encrypted spaces.",
        epilog="Every option can also be set as CAUCUS_<OPTION> in the environment or in the "
        "--config file.",
    )
    parser.add_argument("--version", action="version", version=f"caucus {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run a Caucus server (HTTPS, socket.io, media)")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; CAUCUS_HOST)")
    serve.add_argument("--port", type=int, help="HTTPS port (default 8443; CAUCUS_PORT)")
    serve.add_argument("--tls-cert", type=Path, help="certificate chain PEM (default: self-signed)")
    serve.add_argument("--tls-key", type=Path, help="private key PEM for --tls-cert")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    serve.add_argument("--log-format", choices=["text", "json"], help="log line format")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="media worker processes (default: one per core; 0 runs the media in the "
        "server process; CAUCUS_WORKERS)",
    )
    serve.add_argument("--redis-url", help="Redis of a cluster of nodes (CAUCUS_REDIS_URL)")
    serve.add_argument("--node-id", help="this node's name in a cluster (CAUCUS_NODE_ID)")
    serve.add_argument(
        "--smtp-url",
        help="smtp://, smtp+starttls:// or smtps://[USER:PASSWORD@]HOST[:PORT] (default: "
        "mails written as .eml files into <data-dir>/mail; CAUCUS_SMTP_URL)",
    )
    serve.add_argument(
        "--ready-json",
        action="store_true",
        help="when listening, also print one JSON line (url, port, admin password, CA path) "
        "for scripts and tests",
    )

    worker = commands.add_parser(
        "worker",
        help="run one media worker process (caucus serve starts its own)",
        description="Runs the SFU and live rooms of the cases placed on it, and listens on "
        "--cluster-host for signaling nodes. Started by caucus serve; run it yourself to "
        "add workers to a cluster (with CAUCUS_REDIS_URL and CAUCUS_CLUSTER_SECRET set).",
    )
    worker.add_argument("--worker-id", help="name of this worker (default: node id + random)")

    drain = commands.add_parser(
        "drain",
        help="stop placing live rooms on a node of a cluster, for a rolling upgrade",
        description="Marks the node as draining in Redis: no new case is placed on its "
        "media workers, and each case there moves when nobody is in it any more (--now: "
        "at once; its participants reconnect to another node's worker).",
    )
    _common(drain)
    drain.add_argument("--redis-url", help="the cluster's Redis (CAUCUS_REDIS_URL)")
    drain.add_argument("--node-id", help="the node to drain (default: this node's name)")
    drain.add_argument("--now", action="store_true", help="move its live rooms now")
    drain.add_argument("--wait", action="store_true", help="return when no case is left there")
    drain.add_argument("--undo", action="store_true", help="place live rooms there again")

    user = commands.add_parser("user", help="manage user accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="create an admin or neutral account")
    _common(add)
    add.add_argument("username")
    add.add_argument("--role", choices=["admin", "neutral"], required=True)
    add.add_argument("--display-name")
    add.add_argument("--email", help="where the account's mail goes")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    keys = commands.add_parser("keys", help="manage the master key of encrypted case data")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = key_commands.add_parser(
        "rotate",
        help="replace the master key and rewrap every case key (run with the server stopped)",
        description="Writes a new master key file (or takes $CAUCUS_NEW_MASTER_KEY when "
        "$CAUCUS_MASTER_KEY is used) and rewraps every case key; files are not re-encrypted.",
    )
    _common(rotate)
    rotate.add_argument(
        "--keep-old",
        action="store_true",
        help="keep the replaced key file as master.key.<key id>.old (default: drop it)",
    )

    agreements.add_parser(commands, _common)
    loadtest.add_parser(commands)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    fields: tuple[str, ...] = ("host", "port", "data_dir", "database_url", "tls_cert", "tls_key")
    fields += ("log_level", "log_format", "workers", "redis_url", "node_id", "smtp_url")
    overrides = {f: getattr(args, f, None) for f in fields}
    return load_settings(args.config, **overrides)


async def serve(
    settings: Settings, *, ready: asyncio.Event | None = None, ready_json: bool = False
) -> None:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    services = Services.build(settings)
    await services.start()
    admin_password = await services.accounts.ensure_first_admin()
    certificate = load_certificate(
        settings.tls_cert, settings.tls_key, settings.certs_dir, [settings.host]
    )
    supervisor: WorkerSupervisor | None = None
    cluster: MediaCluster | None = None
    count = settings.effective_workers
    if count:
        if settings.redis_url and not settings.cluster_secret:
            await services.close()
            raise ValueError(
                "a node with Redis needs the cluster secret shared by every node "
                "(CAUCUS_CLUSTER_SECRET, at least 16 characters)"
            )
        secret = settings.cluster_secret or secrets.token_urlsafe(32)
        directory = directory_for(settings.redis_url)
        print(f"Starting {count} media worker{'s' if count > 1 else ''}…", file=sys.stderr)
        supervisor = WorkerSupervisor(settings, count, directory, secret)
        try:
            await supervisor.start(progress=True)
        except BaseException:
            await services.close()
            raise
        cluster = MediaCluster(services, directory, secret)
    app = build_app(services, cluster)
    print(f"Mail goes to {app[MAIL_SENDER].transport.describe()}", file=sys.stderr, flush=True)
    # On SIGTERM, connections still open after SHUTDOWN_SECONDS are closed: browsers then
    # reconnect (behind a load balancer, to another node) instead of waiting a minute.
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=certificate.ssl_context())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await site.start()
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        port = runner.addresses[0][1] if settings.port == 0 else settings.port
        print(f"Caucus listening on https://{host}:{port}/", flush=True)
        if admin_password:
            print("Admin user: admin", flush=True)
            print(f"One-time password: {admin_password}", flush=True)
            print("(You will be asked to choose a new password at first sign-in.)", flush=True)
        if certificate.ca_path:
            print(f"Self-signed certificate authority: {certificate.ca_path}", flush=True)
        if ready_json:
            banner = {
                "ready": True,
                "url": f"https://{host}:{port}/",
                "host": settings.host,
                "port": port,
                "admin_password": admin_password,
                "ca_path": str(certificate.ca_path) if certificate.ca_path else None,
                "workers": count,
            }
            print(json.dumps(banner), flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        if cluster is not None:
            await cluster.close()
        if supervisor is not None:
            await supervisor.stop()
            await supervisor.directory.close()
        await services.close()
    print("Caucus stopped.", flush=True)


async def user_add(settings: Settings, args: argparse.Namespace) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = Services.build(settings)
    await services.start()
    try:
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            must_change = False
            check = True
        else:
            password = services.accounts.one_time_password()
            must_change = True
            check = False
        user = await services.accounts.create_user(
            args.username,
            password,
            role=args.role,
            display_name=args.display_name,
            must_change_password=must_change,
            check_policy=check,
            email=args.email,
        )
        print(f"Created {user.role} {user.username}" + (f" <{user.email}>." if user.email else "."))
        if user.email:
            print("A link to verify the address is queued; the server mails it.")
        if not args.password_stdin:
            print(f"One-time password: {password}")
        return 0
    except CaucusError as exc:
        print(f"caucus: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await services.close()


async def drain_node(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.redis_url:
        print("caucus: drain needs the cluster's Redis (--redis-url)", file=sys.stderr)
        return 2
    if args.now and not settings.cluster_secret:
        print(
            "caucus: drain --now talks to the node's workers: set CAUCUS_CLUSTER_SECRET",
            file=sys.stderr,
        )
        return 2
    directory = RedisDirectory(settings.redis_url)
    node = settings.effective_node_id
    try:
        workers = [w for w in await directory.workers() if w.node == node]
        if not workers and not args.undo:
            known = sorted({w.node for w in await directory.workers()})
            print(
                f"caucus: no media worker of node {node!r} is registered in this Redis "
                f"(nodes running: {', '.join(known) or 'none'}); check --node-id",
                file=sys.stderr,
            )
            return 1
        await directory.set_draining(node, not args.undo)
        if args.undo:
            print(f"Node {node}: live rooms are placed on its {len(workers)} workers again.")
            return 0
        print(f"Node {node} is draining: no new live rooms are placed on it.")
        if args.now:
            await _move_cases_now(settings, directory, workers)
        while True:
            left = {w.id: await directory.cases_on(w.id) for w in workers}
            total = sum(len(cases) for cases in left.values())
            print(f"{total} case{'s' if total != 1 else ''} still on its workers", flush=True)
            if not args.wait or total == 0:
                return 0
            await asyncio.sleep(2)
            workers = [w for w in await directory.workers() if w.node == node]
    finally:
        await directory.close()


async def _move_cases_now(settings: Settings, directory: RedisDirectory, workers: list) -> None:
    """Ask each worker of the node to end its cases' live sessions; their participants
    join again and land on another node's worker."""
    from signaling.cluster.rpc import RpcConnection

    async def ignore(_method: str, _params: dict) -> None:
        return None

    for worker in workers:
        connection = await RpcConnection.connect(
            worker.host, worker.port, settings.cluster_secret or "", ignore
        )
        try:
            for case_id in await directory.cases_on(worker.id):
                await connection.call("end_case", {"case_id": case_id, "reason": "moved"})
        finally:
            await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "loadtest":
        return loadtest.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "worker":
        from signaling.cli.worker import worker_main

        return worker_main(args.worker_id)
    try:
        settings = settings_from(args)
    except Exception as exc:
        print(f"caucus: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        freeze_startup_heap()
        try:
            asyncio.run(serve(settings, ready_json=args.ready_json))
        except (OSError, ValueError) as exc:
            print(f"caucus: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "drain":
        return asyncio.run(drain_node(settings, args))
    if args.command == "user" and args.user_command == "add":
        return asyncio.run(user_add(settings, args))
    if args.command == "verify-agreement":
        return agreements.verify_agreement(settings, args)
    if args.command == "keys" and args.keys_command == "rotate":
        from signaling.cli.keys import rotate_keys

        try:
            print(asyncio.run(rotate_keys(settings, keep_old=args.keep_old)))
        except (CaucusError, MasterKeyError) as exc:
            print(f"caucus: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return 1
        return 0
    return 2
