"""``caucus verify-agreement FILE.pdf SIGNATURE``: check a sealed agreement offline.

The check needs no database and no running server: only the installation's public seal
key, by default the one beside the private key in the data directory
(``agreement-seal.pub``; the private key file also works), or any copy of it given with
``--public-key`` (for example the PEM served at ``/api/agreements/seal-key``).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable
from pathlib import Path

from rooms.agreements.seal_file import MAX_SIGNATURE_FILE, SealCheckFailed, check_seal
from rooms.agreements.seal_key import SealKeyError, load_verify_key, public_key_path
from signaling.settings import Settings

#: Exit statuses: the copy checks out; it does not; the check could not be made.
VALID, INVALID, UNUSABLE = 0, 1, 2


def add_parser(
    commands: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    verify = commands.add_parser(
        "verify-agreement",
        help="check a sealed agreement PDF against its signature file and the seal key",
        description="Exit status 0: the PDF is exactly the one this installation sealed; "
        "1: it is not (altered PDF or signature, another key); 2: the files or the key "
        "could not be read.",
    )
    common(verify)
    verify.add_argument("pdf", type=Path, metavar="FILE.pdf", help="the sealed PDF")
    verify.add_argument("signature", type=Path, metavar="SIGNATURE", help="its .sig file")
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="PEM",
        help="the installation's public seal key (default: agreement-seal.pub in the data "
        "directory)",
    )


def verify_agreement(settings: Settings, args: argparse.Namespace) -> int:
    key_file = args.public_key
    if key_file is None:
        private = settings.agreement_seal_key_path
        key_file = public_key_path(private) if public_key_path(private).exists() else private
    try:
        key = load_verify_key(key_file)
    except (OSError, SealKeyError) as exc:
        print(f"caucus: cannot read the seal key {key_file}: {exc}", file=sys.stderr)
        return UNUSABLE
    try:
        pdf = args.pdf.read_bytes()
        with args.signature.open("rb") as file:
            signature = file.read(MAX_SIGNATURE_FILE + 1)
    except OSError as exc:
        print(f"caucus: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return UNUSABLE
    try:
        statement = check_seal(pdf, signature, key)
    except SealCheckFailed as failure:
        print(f"NOT VALID: {failure.message}", file=sys.stderr)
        return INVALID
    sealed = datetime.datetime.fromtimestamp(statement.sealed_at, datetime.UTC)
    print(
        f"VALID: {args.pdf} is the sealed agreement {statement.agreement_id} "
        f"(version {statement.version}), sealed {sealed:%Y-%m-%d %H:%M:%S} UTC by seal key "
        f"{statement.key_id}.\n"
        f"Document SHA-256 (canonical text): {statement.document_sha256}\n"
        f"PDF SHA-256: {statement.pdf_sha256}"
    )
    return VALID
