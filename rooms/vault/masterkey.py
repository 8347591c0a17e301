"""The master key: the one secret that wraps every case key.

It comes from the environment (``CAUCUS_MASTER_KEY``, base64 of 32 bytes) or from a key
file in the data directory, created with mode 0600 on first start. It is never stored in
the database; the database only holds wrapped case keys (``case_keys``: case_id,
wrapped_key, master_key_id).

Wrapping is AES Key Wrap (RFC 3394, ``aes_key_wrap``): a 32-byte case key becomes 40
wrapped bytes, and unwrapping with any other master key or tampered bytes fails its
integrity check. ``key_id`` names a master key without revealing it, so the store can
record which master key wrapped each case key and rotation can find the rows still
wrapped by the old one. Rotation (``rewrap``) touches only wrapped keys, never blobs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from rooms.vault.format import KEY_SIZE, VaultIntegrityError

__all__ = ["ENV_VAR", "MasterKey", "MasterKeyError", "rewrap"]

ENV_VAR = "CAUCUS_MASTER_KEY"
WRAPPED_SIZE = KEY_SIZE + 8
_KEY_ID_DOMAIN = b"caucus master key id\x00"
#: Small secrets of accounts (TOTP seeds) sealed under a key derived from the master key:
#: ``s1.<master key id>.<base64url of nonce + AES-256-GCM ciphertext and tag>``.
SEALED_PREFIX = "s1."
_SEAL_INFO = b"caucus sealed account secrets v1"

log = logging.getLogger(__name__)


class MasterKeyError(Exception):
    """The configured master key is missing, malformed or unreadable."""


def _decode(value: str, source: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"master key from {source} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise MasterKeyError(
            f"master key from {source} must decode to {KEY_SIZE} bytes, got {len(key)}"
        )
    return key


class MasterKey:
    """Owns the 32-byte master key; wraps and unwraps case keys.

    ``key_id`` is 16 hex digits of SHA-256 over a domain prefix and the key.
    """

    __slots__ = ("__aes", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise MasterKeyError(f"master key must be {KEY_SIZE} bytes, got {len(key)}")
        self.__aes = bytes(key)
        self.key_id: str = hashlib.sha256(_KEY_ID_DOMAIN + self.__aes).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def from_base64(cls, value: str) -> MasterKey:
        return cls(_decode(value, "base64 value"))

    def to_base64(self) -> str:
        """The key as an operator would put it in ``CAUCUS_MASTER_KEY``."""
        return base64.b64encode(self.__aes).decode("ascii")

    @classmethod
    def load_or_create(cls, path: Path, env_value: str | None = None) -> MasterKey:
        """The master key from ``env_value`` if given, else from ``path``.

        If neither exists, a new key is written to ``path`` (base64, one line, mode
        0600, parent directory created 0700). Creation is atomic: the file appears
        complete or not at all, and two processes starting together end up with the
        same key. ``env_value`` given but empty is an error, not a fallback.
        """
        if env_value is not None:
            return cls(_decode(env_value, f"${ENV_VAR}"))
        path = Path(path)
        try:
            return cls._read(path)
        except FileNotFoundError:
            pass
        key = cls.generate()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, key.to_base64().encode("ascii") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)  # fails if another process created it meanwhile
            except FileExistsError:
                return cls._read(path)
        finally:
            temp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        log.info("created master key %s in %s", key.key_id, path)
        return key

    @classmethod
    def _read(cls, path: Path) -> MasterKey:
        with path.open("r", encoding="ascii") as file:
            mode = os.fstat(file.fileno()).st_mode
            value = file.read()
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("master key file %s is accessible to group/others; chmod 600 it", path)
        return cls(_decode(value, str(path)))

    def seal(self, secret: bytes, context: bytes) -> str:
        """``secret`` encrypted (AES-256-GCM under a key derived from this master key,
        ``context`` bound as associated data, e.g. the owner's id) as text for a column."""
        nonce = os.urandom(12)
        sealed = AESGCM(self.__sealing_key()).encrypt(nonce, secret, context)
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{SEALED_PREFIX}{self.key_id}.{body}"

    def open_sealed(self, text: str, context: bytes) -> bytes:
        """The secret :meth:`seal` made; ``VaultIntegrityError`` if another master key
        sealed it, the context differs or the text was altered."""
        key_id = sealed_by(text)
        if key_id != self.key_id:
            raise VaultIntegrityError(
                f"a sealed secret is not sealed by master key {self.key_id} ({key_id})"
            )
        try:
            raw = base64.urlsafe_b64decode(text.rpartition(".")[2].encode("ascii"))
            return AESGCM(self.__sealing_key()).decrypt(raw[:12], raw[12:], context)
        except (InvalidTag, ValueError, binascii.Error):
            raise VaultIntegrityError("a sealed secret failed authentication") from None

    def __sealing_key(self) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_SEAL_INFO)
        return hkdf.derive(self.__aes)

    def wrap(self, data_key: bytes) -> bytes:
        """Wrap a 32-byte case key (AES-KW); 40 bytes out."""
        if len(data_key) != KEY_SIZE:
            raise ValueError(f"data key must be {KEY_SIZE} bytes, got {len(data_key)}")
        return aes_key_wrap(self.__aes, data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        """Unwrap a case key; ``VaultIntegrityError`` if another master key wrapped it
        or the bytes were altered."""
        if len(wrapped) != WRAPPED_SIZE:
            raise VaultIntegrityError(
                f"wrapped case key must be {WRAPPED_SIZE} bytes, got {len(wrapped)}"
            )
        try:
            return aes_key_unwrap(self.__aes, wrapped)
        except InvalidUnwrap:
            raise VaultIntegrityError(
                f"wrapped case key does not unwrap with master key {self.key_id} "
                "(wrapped by another master key, or tampered)"
            ) from None


def sealed_by(text: str) -> str | None:
    """The id of the master key that sealed ``text``; ``None`` when it is not sealed."""
    if not text.startswith(SEALED_PREFIX):
        return None
    key_id, dot, _body = text[len(SEALED_PREFIX) :].partition(".")
    return key_id if dot else None


def rewrap(wrapped: bytes, old: MasterKey, new: MasterKey) -> bytes:
    """Master key rotation for one case key: unwrap with ``old``, wrap with ``new``.

    Blobs and sealed values are untouched: they depend on the case key, which does not
    change. The caller stores the result with ``new.key_id``.
    """
    return new.wrap(old.unwrap(wrapped))
