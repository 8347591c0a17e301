"""Command-line options of ``caucus loadtest`` and its entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

DEFAULT_ACCOUNTS = Path("caucus-loadtest.json")


def bitrate(text: str) -> int:
    """``500000``, ``500k`` or ``1.5M`` as bits per second."""
    value = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1:], 1)
    number = float(value[:-1] if scale != 1 else value)
    if number <= 0:
        raise argparse.ArgumentTypeError("the bitrate must be positive")
    return int(number * scale)


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="https://127.0.0.1:8443", help="the server's base URL")
    parser.add_argument(
        "--accounts",
        type=Path,
        default=DEFAULT_ACCOUNTS,
        metavar="FILE",
        help=f"accounts file written by --setup and read by a run (default {DEFAULT_ACCOUNTS})",
    )
    parser.add_argument("--rooms", type=positive(int), default=1, help="live rooms (cases)")
    parser.add_argument(
        "--publishers", type=int, default=2, help="participants per room sending audio and video"
    )
    parser.add_argument(
        "--subscribers", type=int, default=0, help="participants per room only receiving"
    )
    parser.add_argument("--audio-only", action="store_true", help="publish audio only")
    parser.add_argument(
        "--video-bitrate", type=bitrate, default=500_000, help="VP8 bitrate (default 500k)"
    )
    parser.add_argument(
        "--duration", type=positive(float), default=30.0, help="seconds measured (default 30)"
    )
    parser.add_argument(
        "--ramp", type=positive(float), default=5.0, help="joins per second (default 5)"
    )
    parser.add_argument(
        "--settle-timeout",
        type=positive(float),
        default=20.0,
        help="longest wait for every track to flow before measuring (default 20 s)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--no-table", action="store_true", help="print the summary only")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument(
        "--metrics-token",
        default=os.environ.get("CAUCUS_METRICS_TOKEN"),
        help="bearer token for GET /metrics (default $CAUCUS_METRICS_TOKEN)",
    )
    setup = parser.add_argument_group("creating the accounts (--setup)")
    setup.add_argument(
        "--setup",
        action="store_true",
        help="create a neutral, --rooms cases and --publishers + --subscribers party "
        "accounts per case, and write them to --accounts",
    )
    setup.add_argument("--admin-user", default="admin", help="admin username (default admin)")
    setup.add_argument(
        "--admin-password",
        default=os.environ.get("CAUCUS_LOADTEST_ADMIN_PASSWORD"),
        help="admin password (default $CAUCUS_LOADTEST_ADMIN_PASSWORD); during a run, "
        "without --metrics-token, it is used to read GET /metrics",
    )
    setup.add_argument(
        "--admin-totp",
        default=os.environ.get("CAUCUS_LOADTEST_ADMIN_TOTP"),
        help="the admin's TOTP code, or its base32 secret (default $CAUCUS_LOADTEST_ADMIN_TOTP)",
    )
    setup.add_argument(
        "--admin-new-password",
        default=os.environ.get("CAUCUS_LOADTEST_ADMIN_NEW_PASSWORD"),
        help="when the admin must still replace a one-time password: the new one "
        "(default $CAUCUS_LOADTEST_ADMIN_NEW_PASSWORD)",
    )


async def _setup(args: argparse.Namespace) -> int:
    from .loadtest_setup import SetupError, create_accounts, write_accounts

    if not args.admin_password:
        print(
            "caucus loadtest: --setup needs the admin password "
            "(--admin-password or $CAUCUS_LOADTEST_ADMIN_PASSWORD)",
            file=sys.stderr,
        )
        return 2
    try:
        accounts = await create_accounts(
            args.url,
            rooms=args.rooms,
            per_room=args.publishers + args.subscribers,
            admin_user=args.admin_user,
            admin_password=args.admin_password,
            admin_totp=args.admin_totp,
            admin_new_password=args.admin_new_password,
            insecure=args.insecure,
            progress=lambda text: print(text, file=sys.stderr),
        )
    except SetupError as exc:
        print(f"caucus loadtest: {exc.message}", file=sys.stderr)
        return 1
    write_accounts(args.accounts, accounts)
    total = args.rooms * (args.publishers + args.subscribers)
    print(f"Wrote {args.rooms} cases and {total} accounts to {args.accounts}")
    return 0


def main(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    if args.publishers < 0 or args.subscribers < 0 or args.publishers + args.subscribers < 1:
        print("caucus loadtest: at least one participant per room", file=sys.stderr)
        return 2
    if args.setup:
        return asyncio.run(_setup(args))
    from .loadtest import LoadConfig, run_loadtest

    config = LoadConfig(
        url=args.url.rstrip("/"),
        accounts=args.accounts,
        rooms=args.rooms,
        publishers=args.publishers,
        subscribers=args.subscribers,
        audio_only=args.audio_only,
        video_bitrate=args.video_bitrate,
        duration=args.duration,
        ramp=args.ramp,
        insecure=args.insecure,
        json_path=args.json,
        metrics_token=args.metrics_token,
        admin_user=args.admin_user if args.admin_password else None,
        admin_password=args.admin_password,
        settle_timeout=args.settle_timeout,
        progress=not args.quiet,
        table=not args.no_table,
    )
    if not config.accounts.exists():
        print(
            f"caucus loadtest: no accounts file {config.accounts}; "
            "create one with caucus loadtest --setup",
            file=sys.stderr,
        )
        return 2
    from sfu.heap import freeze_startup_heap

    freeze_startup_heap()  # full collections would stall the receive timer and the pacer
    return asyncio.run(run_loadtest(config))
