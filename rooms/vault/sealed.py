"""Small sealed values (message bodies, TOTP secrets) under a case key.

One AES-256-GCM message under a key derived from the case key, with the caller's
purpose as associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rooms.vault.format import KEY_SIZE, NONCE_SIZE, TAG_SIZE, VaultIntegrityError, check_key

_SEAL_INFO = b"caucus seal v1"
_SEAL_VERSION = b"\x01"
_SEAL_OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE


def _seal_aead(case_key: bytes) -> AESGCM:
    check_key(case_key)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_SEAL_INFO)
    return AESGCM(hkdf.derive(case_key))


def seal(case_key: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """Encrypt a small value (message body, TOTP secret) under a case key.

    ``aad`` names what the value is (e.g. ``b"message:<id>"``) and must be given again to
    ``unseal``: a sealed value copied to another purpose or row does not open there.
    Output: ``0x01 || nonce (12, random) || ciphertext || tag (16)``.
    """
    nonce = os.urandom(NONCE_SIZE)
    return _SEAL_VERSION + nonce + _seal_aead(case_key).encrypt(nonce, plaintext, aad)


def unseal(case_key: bytes, aad: bytes, sealed: bytes) -> bytes:
    """Decrypt a value from ``seal``; raise ``VaultIntegrityError`` if it does not verify."""
    if len(sealed) < _SEAL_OVERHEAD or sealed[:1] != _SEAL_VERSION:
        raise VaultIntegrityError("sealed value is malformed or of an unknown version")
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return _seal_aead(case_key).decrypt(nonce, sealed[1 + NONCE_SIZE :], aad)
    except InvalidTag:
        raise VaultIntegrityError(
            "sealed value failed authentication (wrong case key, wrong purpose or tampered)"
        ) from None
