"""The installation's agreement seal key: an Ed25519 key pair kept for sealing only.

The private key is a file in the data directory (``agreement-seal.key``, PKCS#8 PEM, mode
0600, created atomically on first use like the master key; never in the database). Its
public half is written beside it (``agreement-seal.pub``, SubjectPublicKeyInfo PEM) for
the operator to publish; it is also served at ``GET /api/agreements/seal-key``.
``key_id`` names a key: the first 16 hex digits of the SHA-256 of its 32 raw public bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)


class SealKeyError(Exception):
    """The seal key file is unreadable or not an Ed25519 key."""


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class SealVerifyKey:
    """A public seal key: checks signatures, names itself by ``key_id``."""

    __slots__ = ("__public", "key_id")

    def __init__(self, public: Ed25519PublicKey) -> None:
        self.__public = public
        self.key_id = key_id_of(public)

    @classmethod
    def from_pem(cls, pem: bytes) -> SealVerifyKey:
        try:
            public = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise SealKeyError("not a PEM public key") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise SealKeyError("the public key is not an Ed25519 key")
        return cls(public)

    def pem(self) -> str:
        return self.__public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def verifies(self, signature: bytes, data: bytes) -> bool:
        try:
            self.__public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class SealKey:
    """Owns the installation's private seal key; signs seal statements."""

    __slots__ = ("__private", "public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.__private = private
        self.public = SealVerifyKey(private.public_key())

    def __repr__(self) -> str:
        return f"SealKey(key_id={self.public.key_id!r})"

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @classmethod
    def generate(cls) -> SealKey:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self.__private.sign(data)

    def private_pem(self) -> bytes:
        return self.__private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> SealKey:
        """The key in ``path``, or a new one written there (0600, atomically: two processes
        starting together end up with the same key), with its public half beside it."""
        path = Path(path)
        try:
            key = cls._read(path)
        except FileNotFoundError:
            key = cls._create(path)
        public = public_key_path(path)
        if not public.exists():
            _write_atomically(public, key.public.pem().encode("ascii"), 0o644)
        return key

    @classmethod
    def _create(cls, path: Path) -> SealKey:
        key = cls.generate()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _write_atomically(path, key.private_pem(), 0o600):
            return cls._read(path)  # another process was first
        log.info("created agreement seal key %s in %s", key.key_id, path)
        return key

    @classmethod
    def _read(cls, path: Path) -> SealKey:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            pem = file.read()
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("agreement seal key file %s is accessible to group/others", path)
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SealKeyError(f"{path} is not a PEM private key") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise SealKeyError(f"{path} is not an Ed25519 key")
        return cls(private)


def public_key_path(private_path: Path) -> Path:
    return private_path.with_suffix(".pub")


def load_verify_key(path: Path) -> SealVerifyKey:
    """The public key from a ``.pub`` PEM file, or the public half of a private key file."""
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        return SealKey._read(Path(path)).public
    return SealVerifyKey.from_pem(data)


def _write_atomically(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` complete or not at all; False when it existed already."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
    finally:
        temp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
