"""Runs localstripe for the tests (``python -m tests.support.localstripe_process --port N``),
with four differences from its own ``localstripe`` command:

- it listens on 127.0.0.1 only (the command binds ``::``, every interface);
- its store stays in memory: the command pickles the whole store to the fixed path
  ``/tmp/localstripe.pickle`` after every write, which two test processes would share;
- a PaymentIntent accepts the parameters Caucus sends that localstripe (written against an
  older API version) refuses as "Unexpected": ``description``,
  ``automatic_payment_methods`` (off) and ``allowed_payment_method_types`` (the current
  name of ``payment_method_types``);
- it logs webhook deliveries and requests to stderr (the fixture keeps them in a file and
  shows them when a test fails).

Webhook deliveries verify TLS against the default trust store, which honours
``SSL_CERT_FILE``: the fixture sets it to trust a test server's own certificate authority.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError


def keep_store_in_memory() -> None:
    assert hasattr(resources.Store, "dump_to_disk"), "localstripe's store changed"
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]


def accept_current_intent_parameters() -> None:
    original = resources.PaymentIntent.__init__

    def init(
        self: Any,
        *,
        description: str | None = None,
        automatic_payment_methods: dict[str, Any] | None = None,
        allowed_payment_method_types: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if automatic_payment_methods is not None and automatic_payment_methods.get(
            "enabled"
        ) not in (False, "false"):
            raise UserError(400, "localstripe: automatic payment methods are not supported")
        if allowed_payment_method_types is not None:
            kwargs.setdefault("payment_method_types", allowed_payment_method_types)
        original(self, **kwargs)
        self.description = description
        self.payment_method_types = kwargs.get("payment_method_types") or ["card"]

    resources.PaymentIntent.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    keep_store_in_memory()
    accept_current_intent_parameters()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    web.run_app(server.app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    sys.exit(main())
