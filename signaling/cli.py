"""The ``caucus`` command: run a server and administer it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from certs.authority import load_certificate
from client import loadtest_cli
from rooms import __version__
from rooms.errors import CaucusError
from rooms.masterkey import MasterKeyError
from signaling.app import build_app
from signaling.logconfig import configure_logging
from signaling.services import Services
from signaling.settings import Settings, load_settings

log = logging.getLogger("caucus")


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

    user = commands.add_parser("user", help="manage user accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="create an admin or neutral account")
    _common(add)
    add.add_argument("username")
    add.add_argument("--role", choices=["admin", "neutral"], required=True)
    add.add_argument("--display-name")
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

    loadtest = commands.add_parser(
        "loadtest",
        help="simulate participants in live rooms and measure every track they receive",
        description="Run --setup once (it creates the accounts over the API), then run "
        "without it. See docs/loadtest.md.",
    )
    loadtest_cli.add_arguments(loadtest)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    fields = ("host", "port", "data_dir", "database_url", "tls_cert", "tls_key")
    fields += ("log_level", "log_format")
    overrides = {f: getattr(args, f, None) for f in fields}
    return load_settings(args.config, **overrides)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = Services.build(settings)
    await services.start()
    admin_password = await services.accounts.ensure_first_admin()
    certificate = load_certificate(
        settings.tls_cert, settings.tls_key, settings.certs_dir, [settings.host]
    )
    app = build_app(services)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
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
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
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
        )
        print(f"Created {user.role} {user.username}.")
        if not args.password_stdin:
            print(f"One-time password: {password}")
        return 0
    except CaucusError as exc:
        print(f"caucus: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await services.close()


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.command == "loadtest":
        return loadtest_cli.main(args)
    try:
        settings = settings_from(args)
    except Exception as exc:
        print(f"caucus: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        try:
            asyncio.run(serve(settings))
        except OSError as exc:
            print(f"caucus: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "user" and args.user_command == "add":
        return asyncio.run(user_add(settings, args))
    if args.command == "keys" and args.keys_command == "rotate":
        from signaling.cli_keys import rotate_keys

        try:
            print(asyncio.run(rotate_keys(settings, keep_old=args.keep_old)))
        except (CaucusError, MasterKeyError) as exc:
            print(f"caucus: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return 1
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
