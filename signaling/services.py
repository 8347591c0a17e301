"""The domain services one Caucus process runs, built from its settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aiohttp import web
from argon2 import PasswordHasher

from rooms.accounts.accounts import Accounts
from rooms.accounts.devices import TrustedDevices
from rooms.accounts.email_changes import EmailChanges
from rooms.accounts.passwords import PasswordPolicy
from rooms.accounts.resets import PasswordResets
from rooms.accounts.sessions import Sessions
from rooms.accounts.throttle import LoginThrottle
from rooms.agreements.facade import Agreements
from rooms.agreements.records import AgreementParts
from rooms.agreements.seal_key import SealKey
from rooms.billing.invoices import Invoices
from rooms.billing.payments import Payments
from rooms.billing.terms import FeeAgreements
from rooms.cases.cases import Cases
from rooms.cases.closing import CaseClosing
from rooms.cases.keys import CaseKeys
from rooms.requests.agreement import DateAgreement
from rooms.requests.intake import RequestIntake
from rooms.requests.queue import RequestQueue
from rooms.scheduling.bookings import Bookings
from rooms.scheduling.profiles import NeutralProfiles
from rooms.scheduling.sessions import CaseSessions
from rooms.spaces.digests import SpaceDigests
from rooms.spaces.facade import Spaces
from rooms.storage.outbox import Outbox
from rooms.storage.store import Store
from rooms.vault.masterkey import ENV_VAR, MasterKey
from rooms.vault.store import SpaceVault
from signaling.settings import Settings


@dataclass
class Services:
    """Owns the store and the services on top of it."""

    settings: Settings
    store: Store
    accounts: Accounts
    sessions: Sessions
    cases: Cases
    # Encrypted spaces, built from the settings in __post_init__.
    master_key: MasterKey = field(init=False, repr=False)
    vault: SpaceVault = field(init=False)
    case_keys: CaseKeys = field(init=False)
    spaces: Spaces = field(init=False)
    closing: CaseClosing = field(init=False)
    # Mail waiting to be sent (the sender is signaling.mail's, run by the app).
    outbox: Outbox = field(init=False)
    resets: PasswordResets = field(init=False)
    email_changes: EmailChanges = field(init=False)
    digests: SpaceDigests = field(init=False)
    # Requests through public links, the conflict check, agreeing dates, sessions.
    profiles: NeutralProfiles = field(init=False)
    bookings: Bookings = field(init=False)
    case_sessions: CaseSessions = field(init=False)
    intake: RequestIntake = field(init=False)
    agreement: DateAgreement = field(init=False)
    queue: RequestQueue = field(init=False)
    # Fees, invoices and payments (the payment provider is the app's: signaling.payments).
    fees: FeeAgreements = field(init=False)
    invoices: Invoices = field(init=False)
    payments: Payments = field(init=False)
    # Settlement agreements and the installation's seal key (docs/agreements.md).
    agreements: Agreements = field(init=False)

    def __post_init__(self) -> None:
        self.master_key = self.accounts.sealer
        self.vault = SpaceVault(self.settings.vault_path)
        self.case_keys = CaseKeys(self.store, self.master_key)
        self.spaces = Spaces(self.store, self.cases, self.case_keys, self.vault)
        self.closing = CaseClosing(self.store, self.cases, self.case_keys, self.vault, self.spaces)
        self.outbox = Outbox(self.store)
        self.resets = PasswordResets(
            self.accounts,
            self.accounts.throttle,
            lifetime=self.settings.password_reset_minutes * 60,
            per_address=self.settings.password_reset_per_address,
            per_client=self.settings.password_reset_per_client,
        )
        self.email_changes = EmailChanges(self.accounts)
        self.digests = SpaceDigests(self.store, self.settings.digest_minutes * 60)
        settings = self.settings
        self.profiles = NeutralProfiles(self.store)
        self.bookings = Bookings(self.store)
        self.case_sessions = CaseSessions(
            self.store,
            self.cases,
            self.bookings,
            public_url=settings.effective_public_url,
            organizer_email=settings.effective_mail_from_address,
        )
        self.intake = RequestIntake(
            self.store,
            self.bookings,
            self.accounts.throttle,
            confirm_hours=settings.request_confirm_hours,
            per_client=settings.request_per_client,
            per_address=settings.request_per_address,
        )
        self.agreement = DateAgreement(
            self.store,
            self.accounts,
            self.cases,
            self.bookings,
            self.profiles,
            self.case_sessions,
            link_days=settings.request_link_days,
            invitation_hours=settings.invitation_hours,
        )
        self.queue = RequestQueue(
            self.store, self.agreement, shared_practice=settings.shared_conflict_checks
        )
        self.fees = FeeAgreements(self.store, self.cases)
        self.invoices = Invoices(
            self.store,
            self.cases,
            self.fees,
            retention_years=settings.invoice_retention_years,
        )
        self.payments = Payments(self.store, self.invoices)
        self.agreements = Agreements(
            AgreementParts(
                self.store,
                self.cases,
                self.case_keys,
                self.spaces,
                self.vault,
                SealKey.load_or_create(settings.agreement_seal_key_path),
                site_name=settings.site_name,
            )
        )
        self.closing.add_participant(self.agreements.at_close)

    @classmethod
    def build(cls, settings: Settings, store: Store | None = None) -> Services:
        store = store or Store(settings.effective_database_url)
        throttle = LoginThrottle(
            store,
            settings.login_max_failures,
            float(settings.login_window_seconds),
            base_delay=settings.login_delay_seconds,
            max_delay=settings.login_max_delay_seconds,
        )
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        # $CAUCUS_MASTER_KEY when set, else the key file (created 0600 on first start).
        master_key = MasterKey.load_or_create(settings.master_key_path, os.environ.get(ENV_VAR))
        policy = PasswordPolicy(settings.password_min_length, hasher)
        devices = TrustedDevices(store, settings.device_cookie_days * 86400)
        accounts = Accounts(store, policy, throttle, sealer=master_key, devices=devices)
        sessions = Sessions(store, settings.session_hours * 3600)
        return cls(settings, store, accounts, sessions, Cases(store, accounts))

    async def start(self) -> None:
        await self.store.migrate()
        await self.invoices.purge_expired()
        await self.vault.remove_partials()
        await self.accounts.seal_plain_secrets()

    async def close(self) -> None:
        await self.store.close()


SERVICES = web.AppKey("services", Services)
