"""Closing a case: everything it stored is destroyed, only a content-free audit line stays.

The order makes the data unreadable first and then removes what is left:

0. Every ``CaseClosingParticipant`` (the sealed agreements) checks that the case may
   close and reads what it must still send (``before_close``); inside the transaction of
   step 1, before the rows go, it writes that (``while_closing``: mail with the sealed
   copies) and deletes its own rows.
1. One transaction deletes the case's rows (messages, files, spaces and their members,
   invitations, case members, live room state, sessions and their bookings through
   ``ON DELETE CASCADE``; the request it came from, with its people and slots), its wrapped
   data key, and the case row itself, and the accounts that existed only for this case
   (invited members, global role ``member``, now in no case: their sessions, recovery
   codes and login failures with them; each session's cookie hash is kept until it would
   have expired, so its browser is told why it was signed out), and writes the audit
   record ``case.close`` (case id, who, when, how many accounts went; no title, no
   names) and a mail to every member
   with an address but the neutral (the case closed; their account deleted, where it was).
   From the commit on, every
   blob and sealed value of the case is ciphertext under a key that exists nowhere
   (crypto-shredding).
2. The ``CaseClosedListener`` is told (the spaces end open socket.io subscriptions of
   the case's spaces).
3. The case's blob directory is removed.
4. SQLite: ``VACUUM`` and a WAL truncation, so freed pages holding the old rows (the
   wrapped key included) do not linger in the database files; ``secure_delete`` already
   zeroes them as they are freed. PostgreSQL: the rows are deleted; their dead tuples
   are reclaimed by autovacuum and never appear in queries or dumps.

If step 1 fails nothing was changed. If a later step fails (a crash, a full disk), the
data is already unreadable; ``SpaceVault.delete_case_blobs`` can be run again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from rooms.cases.cases import Cases, Member
from rooms.cases.keys import CaseKeys
from rooms.errors import Forbidden, InvalidInput
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    case_members,
    case_requests,
    cases,
    invitations,
    live_sessions,
    login_failures,
    messages,
    recovery_codes,
    removed_account_sessions,
    sessions,
    space_files,
    space_members,
    spaces,
    users,
)
from rooms.storage.store import Store
from rooms.vault.store import SpaceVault

log = logging.getLogger(__name__)


class CaseClosedListener(Protocol):
    """Told once a closed case's rows and data key are gone."""

    async def case_closed(self, case_id: str, space_ids: tuple[str, ...]) -> None:
        """``space_ids``: every space the case had."""


class CaseClosingParticipant(Protocol):
    """Something of a case with work to do before the case's data key goes."""

    async def before_close(self, case_id: str, *, confirmed: bool) -> object:
        """Refuse (a ``CaucusError``) while the case may not close yet; else answer what
        ``while_closing`` needs, read now while the case's data can still be decrypted.
        ``confirmed``: the neutral confirmed closing despite what it would refuse."""

    async def while_closing(self, conn: Any, case_id: str, prepared: object, now: float) -> None:
        """Inside the closing transaction, before the case's rows are deleted."""


class CaseClosing:
    """Owns the close-case procedure (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        cases: Cases,
        keys: CaseKeys,
        vault: SpaceVault,
        listener: CaseClosedListener,
        participants: Sequence[CaseClosingParticipant] = (),
    ) -> None:
        self.__store = store
        self.__cases = cases
        self.__keys = keys
        self.__vault = vault
        self.__listener = listener
        self.__participants = list(participants)

    def add_participant(self, participant: CaseClosingParticipant) -> None:
        self.__participants.append(participant)

    async def close(
        self, case_id: str, actor: Member, confirmation: str, *, confirmed: bool = False
    ) -> None:
        """Close the case when ``actor`` is its neutral and ``confirmation`` repeats its
        title exactly (surrounding spaces aside). ``confirmed``: close even though the
        participants would refuse (signatories who did not download their sealed copy)."""
        if actor.case_id != case_id or actor.role != "neutral":
            raise Forbidden("Only the case's neutral can close it.")
        case = await self.__cases.get(case_id)
        if confirmation.strip() != case.title.strip():
            raise InvalidInput(
                "Type the case title exactly as shown to confirm closing it.",
                code="confirmation_mismatch",
            )
        prepared = [
            (participant, await participant.before_close(case_id, confirmed=confirmed))
            for participant in self.__participants
        ]
        async with self.__store.begin() as conn:
            for participant, ready in prepared:
                await participant.while_closing(conn, case_id, ready, self.__cases.clock())
            space_ids = tuple(
                (
                    await conn.execute(sa.select(spaces.c.id).where(spaces.c.case_id == case_id))
                ).scalars()
            )
            in_case = spaces.c.case_id == case_id
            of_case = sa.select(spaces.c.id).where(in_case).scalar_subquery()
            await conn.execute(sa.delete(messages).where(messages.c.space_id.in_(of_case)))
            await conn.execute(sa.delete(space_files).where(space_files.c.space_id.in_(of_case)))
            await conn.execute(
                sa.delete(space_members).where(space_members.c.space_id.in_(of_case))
            )
            await conn.execute(sa.delete(spaces).where(in_case))
            await conn.execute(sa.delete(invitations).where(invitations.c.case_id == case_id))
            # the request it came from (its intake, people and slots); the conflict
            # decisions on it stay (names, dates, the decision)
            await conn.execute(sa.delete(case_requests).where(case_requests.c.case_id == case_id))
            told = (
                await conn.execute(
                    sa.select(users.c.id, users.c.email, users.c.email_verified_at)
                    .join(case_members, case_members.c.user_id == users.c.id)
                    .where(case_members.c.case_id == case_id)
                )
            ).all()
            member_ids = {row.id for row in told}
            await conn.execute(sa.delete(case_members).where(case_members.c.case_id == case_id))
            await conn.execute(sa.delete(live_sessions).where(live_sessions.c.case_id == case_id))
            await self.__keys.destroy(conn, case_id)
            await conn.execute(sa.delete(cases).where(cases.c.id == case_id))
            deleted = await _delete_case_only_accounts(conn, member_ids)
            now = self.__cases.clock()
            for row in told:
                verified = row.email_verified_at is not None
                if row.email and verified and row.id != actor.user_id:
                    params = {**case.mail_params(), "account_deleted": row.id in deleted}
                    await enqueue(conn, "case_closed", row.email, params, now=now)
            gone = len(deleted)
            detail = {"accounts_deleted": gone} if gone else {}
            await self.__cases.audit(conn, actor.user_id, "case.close", case_id, **detail)
        log.info("case closed: rows and data key deleted", extra={"case": case_id})
        await self.__listener.case_closed(case_id, space_ids)
        await self.__vault.delete_case_blobs(case_id)
        await self.__store.vacuum()


async def _delete_case_only_accounts(conn: Any, member_ids: set[str]) -> set[str]:
    """Delete the accounts among ``member_ids`` that were made by accepting an invitation
    (global role ``member``) and belong to no case any more; answers their ids."""
    if not member_ids:
        return set()
    still = set(
        (
            await conn.execute(
                sa.select(case_members.c.user_id).where(case_members.c.user_id.in_(member_ids))
            )
        ).scalars()
    )
    rows = (
        await conn.execute(
            sa.select(users.c.id, users.c.username).where(
                users.c.id.in_(member_ids - still), users.c.role == "member"
            )
        )
    ).all()
    if not rows:
        return set()
    ids = [row.id for row in rows]
    subjects = [f"user:{row.username}" for row in rows]
    # their browsers are told once why they were signed out (the cookie hash only)
    await conn.execute(
        sa.insert(removed_account_sessions).from_select(
            ["token_hash", "expires_at"],
            sa.select(sessions.c.token_hash, sessions.c.expires_at).where(
                sessions.c.user_id.in_(ids)
            ),
        )
    )
    await conn.execute(sa.delete(sessions).where(sessions.c.user_id.in_(ids)))
    await conn.execute(sa.delete(recovery_codes).where(recovery_codes.c.user_id.in_(ids)))
    await conn.execute(sa.delete(login_failures).where(login_failures.c.subject.in_(subjects)))
    await conn.execute(sa.delete(users).where(users.c.id.in_(ids)))
    return set(ids)
