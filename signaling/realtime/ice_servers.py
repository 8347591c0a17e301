"""The ``iceServers`` a browser receives when it joins a live room or records a video
message: the operator's static STUN/TURN servers, and TURN credentials minted for the
joining user with the TURN REST API scheme (coturn's ``use-auth-secret``).

A minted credential is ``username = "<expiry unix time>:<user_id>"`` and
``credential = base64(HMAC-SHA1(secret, username))``: the TURN server recomputes the
password from the username with the secret it shares with Caucus, and refuses an
allocation once the expiry has passed.  Nothing is stored; each join mints a fresh one.
See docs/deploy.md (TURN) and docs/signaling.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from sfu import MediaSettings
    from signaling.settings import Settings

#: A user id is placed in the TURN username after the expiry; a colon there would make
#: the username ambiguous for the TURN server, which reads the expiry up to the first one.
_MAX_USER_CHARS = 128


@dataclass(frozen=True)
class TurnCredential:
    """One user's TURN username and password, valid until ``expires_at`` (unix seconds)."""

    username: str
    password: str
    expires_at: int

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"TurnCredential(username={self.username!r}, expires_at={self.expires_at})"


def turn_password(secret: str, username: str) -> str:
    """The TURN REST API password of ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class TurnCredentials:
    """Mints TURN credentials for the TURN servers ``urls`` with the secret they share
    with Caucus (coturn's ``static-auth-secret``), each valid ``lifetime`` seconds from
    ``clock()`` (default :func:`time.time`)."""

    def __init__(
        self,
        urls: Sequence[str],
        secret: SecretStr,
        lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not urls:
            raise ValueError("TURN credentials need at least one TURN URL")
        if lifetime <= 0:
            raise ValueError("a TURN credential's lifetime must be positive")
        self.urls = tuple(urls)
        self.lifetime = lifetime
        self.__secret = secret
        self.__clock = clock

    def mint(self, user_id: str) -> TurnCredential:
        """A credential for ``user_id``, expiring ``lifetime`` seconds from now."""
        if not user_id or len(user_id) > _MAX_USER_CHARS or ":" in user_id:
            raise ValueError("a TURN user id is 1-128 characters without a colon")
        expires_at = int(self.__clock()) + self.lifetime
        username = f"{expires_at}:{user_id}"
        password = turn_password(self.__secret.get_secret_value(), username)
        return TurnCredential(username, password, expires_at)

    def ice_server(self, user_id: str) -> dict[str, Any]:
        """An ``RTCIceServer`` of the TURN URLs with a fresh credential for ``user_id``."""
        credential = self.mint(user_id)
        return {
            "urls": list(self.urls),
            "username": credential.username,
            "credential": credential.password,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnCredentials | None:
        """The minter the server's ``turn_urls``/``turn_secret`` describe, or ``None``
        when they are not set."""
        if not settings.turn_urls or settings.turn_secret is None:
            return None
        return cls(settings.turn_urls, settings.turn_secret, settings.turn_credential_seconds)


def browser_ice_servers(
    media: MediaSettings, turn: TurnCredentials | None = None, user_id: str | None = None
) -> list[dict[str, Any]]:
    """``RTCPeerConnection`` ``iceServers`` for the browser of ``user_id``: TURN with a
    credential minted for them first (when ``turn`` is set), then the static servers."""
    servers = []
    if turn is not None and user_id is not None:
        servers.append(turn.ice_server(user_id))
    for server in media.ice_servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username is not None:
            entry["username"] = server.username
            entry["credential"] = server.credential or ""
        servers.append(entry)
    return servers
