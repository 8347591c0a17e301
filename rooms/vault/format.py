"""The vault's blob format: sizes, header, per-blob key and chunk nonces, and its errors.

Encryption at rest for case blobs (``rooms.vault.writer``, ``rooms.vault.reader``,
``rooms.vault.store``) and small sealed values (``rooms.vault.sealed``).

Envelope encryption: a master key (see ``rooms.vault.masterkey``) wraps one random AES-256
*case key* per case; the vault only ever sees unwrapped case keys and never stores them.

Blobs (documents, pictures, video messages, recordings) live under
``<root>/<case_id>/<blob_id>`` and are written as a stream of AES-256-GCM chunks, so
they can be uploaded and served without holding a whole file in memory, and an HTTP
range request decrypts only the chunks it touches.

Blob file format (version 1), all integers big-endian::

    header  (44 bytes)
        magic       4   b"CVLT"
        version     1   0x01
        reserved    3   zero
        chunk_size  4   plaintext bytes per chunk (64 KiB by default)
        salt        32  random, fresh for every blob written
    chunk 0 .. n-1
        ciphertext  len(plaintext_i)   AES-256-GCM
        tag         16

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds
1..chunk_size bytes (0 only for an empty blob, which is one empty chunk). So the chunk
count and the plaintext size follow from the file size alone.

Per-blob key: ``HKDF-SHA256(ikm=case_key, salt=salt, info="caucus blob v1" || case_id ||
blob_id)``. Because the key is fresh per blob (random salt), the nonce can be a counter:
``nonce_i = i (11 bytes) || last (1 byte, 1 on the final chunk, else 0)``. The header is
the associated data of every chunk. Together this is the STREAM construction
(Hoang, Reyhanitabar, Rogaway, Vizár 2015) and it detects:

* a flipped bit anywhere (tag, or header through the AAD and the key);
* reordered or duplicated chunks (the index is in the nonce);
* truncation at a chunk boundary (the new final chunk was sealed with last=0);
* truncation mid-chunk (the tag no longer verifies);
* chunks moved from another blob, even of the same case (different salt, different key);
* a blob file renamed to another blob id or case (the ids are in the key derivation).

Any of these raises ``VaultIntegrityError`` before the plaintext of the bad chunk is
returned; iteration stops there, so nothing after it is returned either.
"""

from __future__ import annotations

import os
import re
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DEFAULT_CHUNK_SIZE = 64 * 1024
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12

MAGIC = b"CVLT"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sB3xI32s")
HEADER_SIZE = HEADER.size  # 44
SALT_SIZE = 32
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024

PARTIAL_SUFFIX = ".partial"
_BLOB_INFO = b"caucus blob v1\x00"

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


class VaultIntegrityError(Exception):
    """Encrypted data failed authentication: wrong key, tampering, truncation or reordering.

    No plaintext from the failing piece of data is ever returned along with this error.
    """


class BlobNotFoundError(Exception):
    """No finished blob with this id exists in this case."""


def new_data_key() -> bytes:
    """Return a fresh random AES-256 key, e.g. a case key to be wrapped by the master key."""
    return os.urandom(KEY_SIZE)


def check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"case key must be {KEY_SIZE} bytes, got {len(key)}")


def check_id(kind: str, value: str) -> bytes:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{kind} must match [A-Za-z0-9_-]{{1,128}}, got {value!r}")
    return value.encode("ascii")


def chunk_nonce(index: int, last: bool) -> bytes:
    return ((index << 8) | last).to_bytes(NONCE_SIZE, "big")


def blob_aead(case_key: bytes, salt: bytes, case_id: str, blob_id: str) -> AESGCM:
    info = _BLOB_INFO + case_id.encode("ascii") + b"\x00" + blob_id.encode("ascii")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info)
    return AESGCM(hkdf.derive(case_key))
