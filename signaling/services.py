"""The domain services one Caucus process runs, built from its settings."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from argon2 import PasswordHasher

from rooms.accounts import Accounts
from rooms.cases import Cases
from rooms.passwords import PasswordPolicy
from rooms.sessions import Sessions
from rooms.store import Store
from rooms.throttle import LoginThrottle
from signaling.settings import Settings


@dataclass
class Services:
    """Owns the store and the services on top of it."""

    settings: Settings
    store: Store
    accounts: Accounts
    sessions: Sessions
    cases: Cases

    @classmethod
    def build(cls, settings: Settings, store: Store | None = None) -> Services:
        store = store or Store(settings.effective_database_url)
        throttle = LoginThrottle(
            store, settings.login_max_failures, float(settings.login_window_seconds)
        )
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        accounts = Accounts(store, PasswordPolicy(settings.password_min_length, hasher), throttle)
        sessions = Sessions(store, settings.session_hours * 3600)
        return cls(settings, store, accounts, sessions, Cases(store, accounts))

    async def start(self) -> None:
        await self.store.migrate()

    async def close(self) -> None:
        await self.store.close()


SERVICES = web.AppKey("services", Services)
