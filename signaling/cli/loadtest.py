"""``caucus loadtest``: the load client's command (``client.loadtest_cli``).

The load client is a headless participant built on aiortc; it is loaded when the command
runs, so that ``caucus serve`` (and every other command) never imports it.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "simulate participants in live rooms and measure every track they receive"
DESCRIPTION = (
    "Run --setup once (it creates the accounts over the API), then run without it. "
    "See docs/loadtest.md."
)


def add_parser(commands: Any) -> None:
    """Declare ``loadtest`` among ``commands`` (its options are the load client's, parsed
    by :func:`main`)."""
    commands.add_parser("loadtest", help=HELP, description=DESCRIPTION, add_help=False)


def main(arguments: list[str]) -> int:
    """Parse the load client's options from ``arguments`` and run it."""
    from client import loadtest_cli

    parser = argparse.ArgumentParser(prog="caucus loadtest", description=DESCRIPTION)
    loadtest_cli.add_arguments(parser)
    return loadtest_cli.main(parser.parse_args(arguments))
