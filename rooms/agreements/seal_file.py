"""The detached signature of a sealed agreement PDF, and checking a PDF against it.

The signature file is UTF-8 text, one field a line, in this order and nothing else::

    Caucus sealed agreement signature v1
    agreement: <32 hex>
    version: <n>
    sealed-at: <UTC time, YYYY-MM-DDTHH:MM:SSZ>
    document-sha256: <64 hex: SHA-256 of the canonical text>
    pdf-sha256: <64 hex: SHA-256 of the PDF file>
    key-id: <16 hex: the installation's seal key>
    signature: <128 hex: Ed25519 over every byte above this line>

Every hex digit is lower case and each line ends with ``\\n``. The Ed25519 signature covers
the exact bytes of the first seven lines (the *statement*), which bind the PDF through
its SHA-256. So any change of one byte is caught: in the PDF its hash no longer matches;
in the statement the signature no longer verifies; in the signature line either the hex is
malformed or the signature does not verify. Without Caucus the statement can be checked
with OpenSSL (docs/agreements.md).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from rooms.agreements.seal_key import SealKey, SealVerifyKey

HEADER = "Caucus sealed agreement signature v1"
MAX_SIGNATURE_FILE = 2048
_FIELDS = (
    ("agreement", re.compile(r"[0-9a-f]{32}")),
    ("version", re.compile(r"[1-9][0-9]{0,8}")),
    ("sealed-at", re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")),
    ("document-sha256", re.compile(r"[0-9a-f]{64}")),
    ("pdf-sha256", re.compile(r"[0-9a-f]{64}")),
    ("key-id", re.compile(r"[0-9a-f]{16}")),
)
_SIGNATURE = re.compile(r"[0-9a-f]{128}")


class SealCheckFailed(Exception):
    """A PDF and signature file that do not check out; ``code`` says why, the message
    says it to a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SealStatement:
    """What the installation signs when it seals an agreement."""

    agreement_id: str
    version: int
    sealed_at: float
    document_sha256: str
    pdf_sha256: str
    key_id: str

    def text(self) -> str:
        when = datetime.datetime.fromtimestamp(int(self.sealed_at), datetime.UTC)
        return (
            f"{HEADER}\n"
            f"agreement: {self.agreement_id}\n"
            f"version: {self.version}\n"
            f"sealed-at: {when.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
            f"document-sha256: {self.document_sha256}\n"
            f"pdf-sha256: {self.pdf_sha256}\n"
            f"key-id: {self.key_id}\n"
        )

    def public(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id,
            "version": self.version,
            "sealed_at": self.sealed_at,
            "document_sha256": self.document_sha256,
            "pdf_sha256": self.pdf_sha256,
            "key_id": self.key_id,
        }


def sign_seal(key: SealKey, statement: SealStatement) -> str:
    """The signature file of ``statement``."""
    text = statement.text()
    return f"{text}signature: {key.sign(text.encode('utf-8')).hex()}\n"


def parse_signature_file(data: bytes) -> tuple[SealStatement, bytes, bytes]:
    """The statement, its exact signed bytes and the signature; ``SealCheckFailed``
    (``malformed_signature``) naming the first line that is wrong."""

    def malformed(detail: str) -> SealCheckFailed:
        return SealCheckFailed(
            "malformed_signature",
            f"This is not an intact Caucus agreement signature file: {detail}.",
        )

    if len(data) > MAX_SIGNATURE_FILE:
        raise malformed("it is far longer than one")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise malformed("it holds bytes that are not plain ASCII text") from None
    if not text.endswith("\n"):
        raise malformed("it does not end with a line break")
    lines = text[:-1].split("\n")
    if len(lines) != len(_FIELDS) + 2:
        raise malformed(f"it has {len(lines)} lines, not {len(_FIELDS) + 2}")
    if lines[0] != HEADER:
        raise malformed(f"line 1 is not {HEADER!r}")
    values: dict[str, str] = {}
    for number, ((name, pattern), line) in enumerate(zip(_FIELDS, lines[1:-1], strict=True), 2):
        prefix = f"{name}: "
        if not line.startswith(prefix) or not pattern.fullmatch(line[len(prefix) :]):
            raise malformed(f"line {number} is not a valid {name!r} line")
        values[name] = line[len(prefix) :]
    last = lines[-1]
    if not last.startswith("signature: ") or not _SIGNATURE.fullmatch(last[11:]):
        raise malformed(f"line {len(lines)} is not a valid 'signature' line")
    try:
        when = datetime.datetime.strptime(values["sealed-at"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise malformed("the sealing time is not a real time") from None
    statement = SealStatement(
        values["agreement"],
        int(values["version"]),
        float(when.replace(tzinfo=datetime.UTC).timestamp()),
        values["document-sha256"],
        values["pdf-sha256"],
        values["key-id"],
    )
    signed = text[: text.rindex("signature: ")].encode("ascii")
    return statement, signed, bytes.fromhex(last[11:])


def check_seal(pdf: bytes, signature_file: bytes, key: SealVerifyKey) -> SealStatement:
    """The statement when ``pdf`` is exactly the PDF this installation sealed with the
    statement of ``signature_file``; ``SealCheckFailed`` with a clear reason otherwise."""
    statement, signed, signature = parse_signature_file(signature_file)
    if statement.key_id != key.key_id:
        raise SealCheckFailed(
            "unknown_key",
            f"The signature names seal key {statement.key_id}, but the key checked against "
            f"is {key.key_id}: it was sealed by another installation or key, or altered.",
        )
    if not key.verifies(signature, signed):
        raise SealCheckFailed(
            "bad_signature",
            "The signature does not verify: the signature file was altered (or was not "
            "made by this installation's seal key).",
        )
    actual = hashlib.sha256(pdf).hexdigest()
    if actual != statement.pdf_sha256:
        raise SealCheckFailed(
            "pdf_mismatch",
            f"The PDF does not match the signature: its SHA-256 is {actual}, the sealed PDF's "
            f"is {statement.pdf_sha256}. The PDF was altered, or it is another document.",
        )
    return statement
