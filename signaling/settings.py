"""Settings of a Caucus server: one typed object, read from a TOML file, the environment
(``CAUCUS_*``) and the command line, in increasing order of precedence."""

from __future__ import annotations

import json
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A TURN server's URL as handed to browsers (RFC 7065), credentials excluded.
_TURN_URL = re.compile(r"turns?:[A-Za-z0-9.\-\[\]:]{1,255}(\?transport=(udp|tcp))?")


#: Secrets a media worker process is given (the others never leave the node).
WORKER_SECRETS = frozenset({"turn_secret"})


class Settings(BaseSettings):
    """Everything an operator can set. Every field is also ``CAUCUS_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CAUCUS_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8443, ge=0, le=65535)
    data_dir: Path = Path("caucus-data")
    database_url: str | None = None
    public_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    session_hours: float = Field(12.0, gt=0)
    # Guessing (docs/security.md, accounts): each subject (an account from one address, an
    # account from every unknown client, an address, a trusted device, a second factor, an
    # invitation) may fail login_max_failures times without delay; then each attempt waits
    # login_delay_seconds after the last failure, doubling per failure up to
    # login_max_delay_seconds.  Failures are remembered for login_window_seconds.
    login_max_failures: int = Field(5, ge=1)
    login_window_seconds: int = Field(86400, ge=1)
    login_delay_seconds: float = Field(30.0, gt=0)
    login_max_delay_seconds: float = Field(900.0, gt=0)
    # How long a browser that completed a sign-in stays trusted (its device cookie).
    device_cookie_days: float = Field(90.0, gt=0, le=400)
    # Failed invitation acceptances (taken usernames, weak passwords, bad links) allowed
    # per invitation and per client address before the delays above apply.
    invitation_accept_max_failures: int = Field(10, ge=1)
    password_min_length: int = Field(12, ge=8)
    # argon2id cost (defaults: RFC 9106's second recommended option)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(64 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(4, ge=1)
    invitation_hours: float = Field(168.0, ge=1, le=720)
    # Password reset links (docs/email.md): how long a link works, and how many requests
    # one address and one client may make (per login_window_seconds) before 429.
    password_reset_minutes: float = Field(30.0, ge=1, le=24 * 60)
    password_reset_per_address: int = Field(3, ge=1)
    password_reset_per_client: int = Field(10, ge=1)
    max_json_bytes: int = Field(64 * 1024, ge=1024)
    log_level: str = "INFO"
    log_format: str = Field("text", pattern="^(text|json)$")
    redis_url: str | None = None
    # Seconds between engine.io pings on socket.io connections: a client that stops
    # answering is dropped after this plus 20 s, and the server keeps a closed socket's
    # ping task until its next wake-up.
    socket_ping_interval: float = Field(25.0, ge=1, le=300)
    # Media worker processes (docs/deploy.md): how many this node starts (None: one per
    # core; 0: the SFU runs inside the signaling process), this node's name in the cluster,
    # the address workers listen on for signaling nodes, and the secret that authenticates
    # those connections (generated per run on a single node; set it on every node of a
    # cluster).
    workers: int | None = Field(None, ge=0, le=256)
    node_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    cluster_host: str = "127.0.0.1"
    cluster_secret: str | None = Field(None, min_length=16)
    # Bearer token that may read GET /metrics (admins may read it with their session).
    metrics_token: str | None = None
    # Media
    rtc_port_min: int = Field(0, ge=0, le=65535)
    rtc_port_max: int = Field(0, ge=0, le=65535)
    rtc_announced_ip: str | None = None
    rtc_ice_servers: list[str] = Field(default_factory=list)
    # TURN with short-lived credentials (docs/deploy.md, TURN): the TURN servers' URLs
    # without credentials (turn:host:3478?transport=udp, turns:host:443?transport=tcp),
    # the secret shared with them (coturn's static-auth-secret) and how long a minted
    # credential is valid. media.join gives each user a fresh one; rtc_ice_servers may
    # still hold static STUN/TURN entries, handed out as well.
    turn_urls: list[str] = Field(default_factory=list, max_length=16)
    turn_secret: SecretStr | None = Field(None, min_length=16)
    turn_credential_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    # The video codecs a live room forwards, preferred first (docs/signaling.md, codecs):
    # the SFU does not transcode, so every participant must decode them. VP8 only by
    # default; add "video/H264" only where every browser is known to decode H.264.
    rtc_room_video_codecs: list[str] = Field(
        default_factory=lambda: ["video/VP8"], min_length=1, max_length=2
    )
    srtp_profiles: list[str] = Field(
        default_factory=lambda: ["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"]
    )
    # The media path's limits against hostile peers, by the name of their field in
    # sfu.MediaSettings (docs/security.md lists them and their defaults), e.g. in the
    # config file `[media_limits]` / `max_tracks_per_publisher = 3`, or
    # CAUCUS_MEDIA_LIMITS='{"connect_timeout": 30}'.
    media_limits: dict[str, float] = Field(default_factory=dict)
    # Spaces
    max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    # The master key file (default <data_dir>/master.key; $CAUCUS_MASTER_KEY wins over it)
    # and the encrypted blob tree (default <data_dir>/vault).
    master_key_file: Path | None = None
    vault_dir: Path | None = None
    # The installation's agreement seal key (Ed25519, docs/agreements.md; default
    # <data_dir>/agreement-seal.key, its public half beside it as agreement-seal.pub).
    agreement_seal_key_file: Path | None = None
    video_message_max_seconds: int = Field(600, ge=1)
    # Live rooms (docs/security.md, live rooms): the whiteboard of one room holds at most
    # whiteboard_max_bytes of strokes (their compact encoded size), a stroke at most
    # whiteboard_max_stroke_points points; one user holds at most live_sessions_per_user
    # live sessions at once (two tabs, say); one media process (the server, or each
    # media worker) holds at most live_sessions_per_worker, so that a flood of joins
    # degrades no session already there (docs/loadtest.md: what one core forwards).
    whiteboard_max_bytes: int = Field(2 * 1024**2, ge=4096, le=256 * 1024**2)
    whiteboard_max_stroke_points: int = Field(500, ge=2, le=5000)
    live_sessions_per_user: int = Field(2, ge=1, le=100)
    live_sessions_per_worker: int = Field(400, ge=1, le=100_000)
    # Mail (docs/email.md): smtp_url is smtp://[user:password@]host[:port] (STARTTLS when
    # the server offers it), smtp+starttls:// (STARTTLS required) or smtps:// (implicit
    # TLS); without it, mails are written as .eml files into mail_dir (default
    # <data_dir>/mail). Links in mails start with public_url (default: this server's
    # https address). The sender is mail_from_name <mail_from_address> (default address:
    # caucus@ the public host).
    smtp_url: str | None = None
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=600)
    mail_dir: Path | None = None
    site_name: str = Field("Caucus", min_length=1, max_length=100)
    mail_from_name: str = Field("Caucus", max_length=100)
    mail_from_address: str | None = Field(None, max_length=320)
    # The outbox sender: how often it looks for due mail, how long one attempt may hold a
    # mail before another process may take it, and the retry schedule of temporary
    # failures (doubling from mail_retry_seconds up to mail_retry_max_seconds, given up
    # after mail_max_attempts). Permanent refusals (5xx) fail at once.
    mail_poll_seconds: float = Field(2.0, gt=0, le=300)
    mail_lease_seconds: float = Field(120.0, gt=0)
    mail_retry_seconds: float = Field(30.0, gt=0)
    mail_retry_max_seconds: float = Field(3600.0, gt=0)
    mail_max_attempts: int = Field(20, ge=1, le=1000)
    # Activity digests: at most one mail per space per person every digest_minutes, only
    # for messages the person has not read and while they were not online in the case;
    # checked every digest_check_seconds.
    digest_minutes: float = Field(15.0, gt=0, le=7 * 24 * 60)
    digest_check_seconds: float = Field(60.0, gt=0, le=3600)
    # Case requests through neutrals' public links: filings per client address and per
    # requester address (in the login window), how long a requester has to confirm their
    # address, how long personal links of request people work. With
    # shared_conflict_checks the conflict check searches every neutral's matters (one
    # practice), else each neutral's own.
    request_per_client: int = Field(10, ge=1)
    request_per_address: int = Field(3, ge=1)
    request_confirm_hours: float = Field(24.0, gt=0, le=24 * 14)
    request_link_days: float = Field(30.0, gt=0, le=365)
    shared_conflict_checks: bool = False
    # Session reminders (24 hours and 1 hour before) are looked for this often.
    reminder_check_seconds: float = Field(60.0, gt=0, le=3600)
    # Card payments through Stripe (docs/payments.md): all three keys, or none (then card
    # payment is hidden and payments are recorded offline). stripe_api_base points the
    # library at another API server (a local test server); stripe_js_url is where the
    # payment page loads Stripe.js from. Invoices and payments are kept
    # invoice_retention_years after issue, then deleted.
    stripe_secret_key: SecretStr | None = None
    stripe_publishable_key: str | None = Field(None, max_length=255)
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = Field(None, max_length=300)
    stripe_js_url: str = Field("https://js.stripe.com/v3/", max_length=300)
    invoice_retention_years: float = Field(10.0, ge=1, le=100)

    @field_validator("turn_urls")
    @classmethod
    def _check_turn_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not _TURN_URL.fullmatch(url):
                raise ValueError(
                    f"not a TURN URL without credentials (turn[s]:host:port[?transport=udp|tcp]): "
                    f"{url[:100]!r}"
                )
        return urls

    @model_validator(mode="after")
    def _turn_urls_and_secret_together(self) -> Settings:
        if bool(self.turn_urls) != (self.turn_secret is not None):
            raise ValueError("turn_urls and turn_secret go together")
        return self

    def worker_json(self) -> str:
        """These settings as JSON for a media worker process: the secrets a worker needs
        (the TURN secret, to mint credentials when it answers ``media.join``) in clear,
        every other secret left out (a plain dump would mask them)."""
        data = self.model_dump(mode="json")
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                data[name] = value.get_secret_value() if name in WORKER_SECRETS else None
        return json.dumps(data)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'caucus.db').resolve()}"

    @property
    def effective_workers(self) -> int:
        if self.workers is None:
            return os.cpu_count() or 1
        return self.workers

    @property
    def effective_node_id(self) -> str:
        return self.node_id or f"{socket.gethostname()}-{self.port}"

    @property
    def certs_dir(self) -> Path:
        return self.data_dir / "certs"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def agreement_seal_key_path(self) -> Path:
        return self.agreement_seal_key_file or self.data_dir / "agreement-seal.key"

    @property
    def vault_path(self) -> Path:
        return self.vault_dir or self.data_dir / "vault"

    @property
    def mail_path(self) -> Path:
        return self.mail_dir or self.data_dir / "mail"

    @property
    def effective_public_url(self) -> str:
        """The base of every link in a mail, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def effective_mail_from_address(self) -> str:
        """The sender's address: the operator's, else caucus@ the public host."""
        if self.mail_from_address:
            return self.mail_from_address
        base = self.effective_public_url
        host = base.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        return f"caucus@{host if '.' in host else 'localhost'}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (TOML, keys as the field names), then the environment,
    then ``overrides`` (command-line options; ``None`` values are ignored)."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        with open(config_file, "rb") as f:
            from_file = tomllib.load(f)
        from_file = from_file.get("caucus", from_file)
    env_settings = Settings(**{})  # environment applied over defaults
    merged = {
        **{k: v for k, v in from_file.items()},
        **{k: getattr(env_settings, k) for k in env_settings.model_fields_set},
        **{k: v for k, v in overrides.items() if v is not None},
    }
    return Settings(**merged)
