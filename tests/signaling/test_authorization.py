"""Every HTTP route and every socket.io event, called as anonymous, as a party of another
case, and as the right role: only the right role succeeds where access is role-bound.

The test walks the live router and the registered namespaces, so a new route or event
without a sample here fails the test instead of going unchecked.
"""

from __future__ import annotations

import inspect
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
import socketio
import sqlalchemy as sa
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from rooms.accounts.sessions import token_hash
from rooms.storage.outbox import enqueue
from rooms.storage.schema import email_changes, password_resets, users
from signaling.http.access import access_of
from signaling.http.state import NAMESPACES
from tests.signaling.live_samples import (
    LIVE_EVENT_PRELUDES,
    LIVE_EVENT_SAMPLES,
    LIVE_WRONG_CALLERS,
)
from tests.signaling.recording_samples import (
    RECORDING_EVENT_PRELUDES,
    RECORDING_EVENT_SAMPLES,
    RECORDING_WRONG_CALLERS,
)
from tests.signaling.spaces_setup import sample_space
from tests.support.requests import decided, filed, open_link, pending, request_form
from tests.support.world import INTAKE, PASSWORD, ApiClient, World, connect

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

Body = Callable[[World], Awaitable[Any]]


@dataclass
class Sample:
    caller: str  # who should succeed: a world user, "anonymous", or a special session
    body: Body | None = None
    wrong: tuple[str, ...] = ()  # who must be refused besides anonymous / the outsider
    case: str = "Case A"  # the case named by {case_id}
    #: Answers that mean the right caller got through (a refusal of the domain after
    #: authorization, e.g. card payments not set up on the test server).
    ok: tuple[int, ...] = ()


async def _none(_w: World) -> None:
    return None


def const(value: Any) -> Body:
    async def make(_w: World) -> Any:
        return value

    return make


async def invitation_body(w: World) -> dict[str, Any]:
    return {"role": "observer", "display_name": "Oscar Observer"}


async def accept_body(w: World) -> dict[str, Any]:
    return {"username": f"new{len(w.users)}", "password": PASSWORD}


async def new_user_body(w: World) -> dict[str, Any]:
    return {"username": f"staff{len(w.users)}", "role": "neutral"}


async def user_id(w: World, username: str) -> str:
    return next(
        u.id for u in await w.server.services.accounts.list_users() if u.username == username
    )


async def new_observer_body(w: World) -> dict[str, Any]:
    name = f"observer{len(w.users)}"
    await w.accept(await w.invite("nina", w.cases["Case A"], "observer"), name)
    return {"user_id": await user_id(w, name)}


async def undeliverable_mail(w: World) -> dict[str, Any]:
    """A mail that can never be sent (no such template), so a retry always finds it."""
    services = w.server.services
    async with services.store.begin() as conn:
        w.ids["mail"] = await enqueue(conn, "no_such_template", "ops@example.org", {}, now=0.0)
    return {}


async def emailed_invitation(w: World) -> dict[str, Any]:
    status, body, _ = await w.clients["nina"].post(
        f"/api/cases/{w.cases['Case A']}/invitations",
        {"role": "observer", "display_name": "Mailed", "email": "mailed@example.org"},
    )
    assert status == 201, body
    w.ids["invitation"] = body["invitation"]["id"]
    return {}


async def reset_link(w: World) -> dict[str, Any]:
    """A reset link of an account of its own (using it ends that account's sessions)."""
    user = await w.server.services.accounts.create_user(f"reset{len(w.users)}", PASSWORD)
    w.users[user.username] = user
    token = secrets.token_urlsafe(32)
    async with w.server.services.store.begin() as conn:
        await conn.execute(
            sa.insert(password_resets).values(
                token_hash=token_hash(token), user_id=user.id, created_at=0.0, expires_at=1e12
            )
        )
    w.ids["reset"] = token
    return {"password": PASSWORD + " reset"}


async def digest_choice(w: World) -> dict[str, Any]:
    return {"case_id": w.cases["Case A"], "digests": False}


async def email_change_link(w: World) -> dict[str, Any]:
    token = secrets.token_urlsafe(32)
    async with w.server.services.store.begin() as conn:
        await conn.execute(
            sa.insert(email_changes).values(
                token_hash=token_hash(token),
                user_id=await user_id(w, "paula"),
                new_email="paula@example.org",
                created_at=0.0,
                expires_at=1e12,
            )
        )
    w.ids["email_change"] = token
    return {}


async def unverified_address(w: World) -> dict[str, Any]:
    """Sam ({user_id}) has an address an admin set and nobody verified yet."""
    async with w.server.services.store.begin() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.id == w.ids["user"])
            .values(email="sam@example.org", email_verified_at=None)
        )
    return {}


async def close_body(w: World) -> dict[str, Any]:
    await w.open_case("nina", "Case To Close")
    return {"confirm_title": "Case To Close"}


async def message_by(w: World, username: str) -> dict[str, Any]:
    where = await sample_space(w)
    message = await w.server.services.spaces.post(
        where["case_id"], where["space_id"], await user_id(w, username), "draft"
    )
    return {**where, "message_id": message.id}


async def edit_payload(w: World) -> dict[str, Any]:
    return {**await message_by(w, "paula"), "body": "edited"}


async def send_payload(w: World) -> dict[str, Any]:
    return {**await sample_space(w), "body": "hello"}


async def nina_link(w: World) -> Any:
    services = w.server.services
    profile = await services.profiles.get(w.users["nina"].id)
    return profile or await open_link(services, w.users["nina"], "nina")


async def link_open(w: World) -> dict[str, Any]:
    await nina_link(w)
    return {}


async def new_request_form(w: World) -> dict[str, Any]:
    profile = await nina_link(w)
    slots = await w.server.services.bookings.open_slots(
        profile.availability, profile.user_id, 60, limit=1
    )
    return request_form(slots)


async def confirmation_link(w: World) -> dict[str, Any]:
    w.ids["request_confirm"] = await filed(w.server.services, await nina_link(w))
    return {}


async def pending_request(w: World) -> dict[str, Any]:
    w.ids["request"] = await pending(w.server.services, await nina_link(w))
    return {"decision": "clear", "note": ""}


async def scheduling_request(w: World) -> dict[str, Any]:
    services = w.server.services
    request_id, tokens = await decided(services, await nina_link(w), w.users["nina"])
    w.ids["request"] = request_id
    w.ids["respond"] = tokens["jon@example.org"]
    return {"answer": "decline"}


async def disclosed_request(w: World) -> dict[str, Any]:
    services = w.server.services
    request_id, tokens = await decided(
        services, await nina_link(w), w.users["nina"], decision="disclose"
    )
    w.ids["request"] = request_id
    w.ids["respond"] = tokens["jon@example.org"]
    return {"consent": True}


async def new_proposal(w: World) -> dict[str, Any]:
    await scheduling_request(w)
    services = w.server.services
    profile = await nina_link(w)
    slots = await services.bookings.open_slots(profile.availability, profile.user_id, 60, limit=1)
    return {"starts_at": slots}


async def agreed_request(w: World) -> dict[str, Any]:
    """A request whose every person accepted the first proposed slot."""
    services = w.server.services
    request_id, tokens = await decided(services, await nina_link(w), w.users["nina"])
    slot_id = ""
    for token in tokens.values():
        described = await services.agreement.describe(token)
        slot_id = described["slots"][0]["id"]
        await services.agreement.answer(token, "accept", slot_id)
    w.ids["request"] = request_id
    return {"slot_id": slot_id}


async def profile_body(w: World) -> dict[str, Any]:
    from tests.support.requests import ALWAYS_OPEN

    return {"handle": "nina", "accepting": True, "availability": ALWAYS_OPEN}


_session_hours = itertools.count()


async def session_body(w: World) -> dict[str, Any]:
    """A time nobody booked: three days ahead, two hours after the previous one."""
    start = int(time.time()) // 60 * 60 + 86400 * 3 + next(_session_hours) * 7200
    return {"starts_at": float(start), "minutes": 60}


async def scheduled_session(w: World) -> dict[str, Any]:
    services = w.server.services
    member = await services.cases.membership(w.cases["Case A"], w.users["nina"].id)
    assert member is not None
    body = await session_body(w)
    session = await services.case_sessions.schedule(
        w.cases["Case A"], member, body["starts_at"], 60
    )
    w.ids["session"] = session.id
    return {"starts_at": body["starts_at"] + 3600, "minutes": 30}


async def calendar_feed(w: World) -> dict[str, Any]:
    w.ids["feed"] = await w.server.services.case_sessions.new_feed(w.users["nina"].id)
    return {}


async def fee_terms(w: World) -> dict[str, Any]:
    paula = await user_id(w, "paula")
    return {
        "currency": "EUR",
        "rate_kind": "per_session",
        "rate": 50_000,
        "seller_name": "Nina Neutral",
        "shares": [{"user_id": paula, "basis_points": 10_000}],
        "remainder_to": paula,
    }


async def terms_to_accept(w: World) -> dict[str, Any]:
    services = w.server.services
    member = await services.cases.membership(w.cases["Case A"], w.users["nina"].id)
    assert member is not None
    agreement = await services.fees.set_terms(w.cases["Case A"], member, await fee_terms(w))
    return {
        "version": agreement.version,
        "digest": agreement.terms.digest(agreement.version),
        "billing_name": "Paula Party",
    }


async def accepted_terms(w: World) -> None:
    services = w.server.services
    agreement = await services.fees.get(w.cases["Case A"])
    if agreement is not None and agreement.complete:
        return
    body = await terms_to_accept(w)
    paula = await services.cases.membership(w.cases["Case A"], await user_id(w, "paula"))
    assert paula is not None
    await services.fees.accept(
        w.cases["Case A"], paula, body["version"], body["digest"], "Paula Party", "1 Elm St"
    )


INVOICE_LINES = [{"description": "Session", "quantity_thousandths": 1000, "unit_amount": 5000}]


async def invoice_lines(w: World) -> dict[str, Any]:
    await accepted_terms(w)
    return {"lines": INVOICE_LINES}


async def open_invoice(w: World) -> dict[str, Any]:
    await accepted_terms(w)
    services = w.server.services
    member = await services.cases.membership(w.cases["Case A"], w.users["nina"].id)
    assert member is not None
    (issued,) = await services.invoices.issue(w.cases["Case A"], member, INVOICE_LINES)
    w.ids["invoice"] = issued["id"]
    return {"amount": 100, "note": "cheque 1"}


async def settled_card_payment(w: World) -> dict[str, Any]:
    """A card payment the provider settled (its event applied)."""
    from rooms.billing.payments import ProviderEvent

    await open_invoice(w)
    services = w.server.services
    card = await services.payments.prepare_card(w.ids["invoice"], await user_id(w, "paula"))
    intent = f"pi_{secrets.token_hex(8)}"
    await services.payments.attach_intent(card.payment_id, intent)
    await services.payments.apply(
        ProviderEvent(f"evt_{intent}", "payment_intent.succeeded", 0.0, intent, card.amount, "eur")
    )
    w.ids["payment"] = card.payment_id
    return {}


async def agreement_space_of(w: World) -> str:
    """Case A's space of nina, paula and her counsel carl, where agreements are drafted
    (sam, an observer of Case A, is not in it)."""
    if "agreement_space" not in w.ids:
        await sample_space(w)
        services, case_id = w.server.services, w.cases["Case A"]
        nina = await services.cases.membership(case_id, w.users["nina"].id)
        assert nina is not None
        members = [await user_id(w, "paula"), await user_id(w, "carl")]
        space = await services.spaces.create(case_id, nina, "Agreements", members)
        w.ids["agreement_space"] = space.id
    return w.ids["agreement_space"]


AGREEMENT_TEXT = {"title": "Settlement", "clauses": [{"heading": "Pay", "body": "EUR 100"}]}


async def draft_agreement(w: World) -> dict[str, Any]:
    """A new draft in the agreement space ({agreement_id})."""
    from rooms.agreements.text import agreement_text

    services, case_id = w.server.services, w.cases["Case A"]
    space_id = await agreement_space_of(w)
    nina = await services.cases.membership(case_id, w.users["nina"].id)
    assert nina is not None
    w.ids["agreement"] = await services.agreements.create(
        case_id, space_id, nina, agreement_text("Settlement", [("Pay", "EUR 100")])
    )
    return {**AGREEMENT_TEXT, "based_on": 1}


async def new_agreement_body(w: World) -> dict[str, Any]:
    await agreement_space_of(w)
    return AGREEMENT_TEXT


async def agreement_comment(w: World) -> dict[str, Any]:
    await draft_agreement(w)
    return {"version": 1, "clause": 1, "body": "Fine by me."}


async def publishable_agreement(w: World) -> dict[str, Any]:
    await draft_agreement(w)
    return {"version": 1, "signatory_ids": [await user_id(w, "paula")]}


async def published_agreement(w: World) -> dict[str, Any]:
    """A draft published for paula's signature, and a fresh proof of her identity."""
    services, case_id = w.server.services, w.cases["Case A"]
    body = await publishable_agreement(w)
    nina = await services.cases.membership(case_id, w.users["nina"].id)
    assert nina is not None
    await services.agreements.publish(
        case_id, w.ids["agreement_space"], w.ids["agreement"], nina, 1, body["signatory_ids"]
    )
    status, _, _ = await w.clients["paula"].post("/api/account/reauth", {"password": PASSWORD})
    assert status == 200
    view = await services.agreements.view(
        case_id, w.ids["agreement_space"], w.ids["agreement"], nina
    )
    return {
        "document_sha256": view["final"]["document_sha256"],
        "full_name": "Paula Party",
        "confirm": True,
    }


async def sealed_agreement(w: World) -> dict[str, Any]:
    body = await published_agreement(w)
    case_id, space_id = w.cases["Case A"], w.ids["agreement_space"]
    status, answer, _ = await w.clients["paula"].post(
        f"/api/cases/{case_id}/spaces/{space_id}/agreements/{w.ids['agreement']}/sign", body
    )
    assert status == 200 and answer["sealed"], answer
    return {}


SPACE = "/api/cases/{case_id}/spaces/{space_id}"
AGREEMENTS = SPACE + "/agreements"
AGREEMENT = AGREEMENTS + "/{agreement_id}"
INVOICE = "/api/invoices/{invoice_id}"
CASE_INVOICE = "/api/cases/{case_id}/invoices/{invoice_id}"
REQUEST = "/api/neutral/requests/{request_id}"
NEUTRALS_ONLY = ("paula", "carl")

# (method, canonical path) -> who succeeds, with what body.
SAMPLES: dict[tuple[str, str], Sample] = {
    ("GET", "/healthz"): Sample("anonymous"),
    ("GET", "/api/session"): Sample("anonymous"),
    ("POST", "/api/login"): Sample("anonymous", const({"username": "nina", "password": PASSWORD})),
    ("POST", "/api/login/totp"): Sample("totp-stage", None),
    ("POST", "/api/logout"): Sample("fresh-session"),
    ("POST", "/api/account/password"): Sample("password-stage", None),
    ("POST", "/api/account/totp/begin"): Sample("fresh-session"),
    ("POST", "/api/account/totp/confirm"): Sample("totp-enrolling", None),
    ("POST", "/api/account/totp/disable"): Sample("totp-enabled", None),
    ("GET", "/api/admin/users"): Sample("root", wrong=("nina",)),
    ("GET", "/api/admin/media"): Sample("root", wrong=("nina",)),
    ("GET", "/api/admin/mail"): Sample("root", wrong=("nina", "paula")),
    ("POST", "/api/admin/mail/test"): Sample(
        "root", const({"to": "ops@example.org"}), wrong=("nina", "paula")
    ),
    ("POST", "/api/admin/mail/{mail_id}/retry"): Sample(
        "root", undeliverable_mail, wrong=("nina", "paula")
    ),
    ("GET", "/metrics"): Sample("root", wrong=("nina", "paula")),
    ("POST", "/api/admin/users"): Sample("root", new_user_body, wrong=("nina",)),
    ("POST", "/api/admin/users/{user_id}/verify-email"): Sample(
        "root", unverified_address, wrong=("nina", "paula")
    ),
    ("GET", "/api/cases"): Sample("paula"),
    ("POST", "/api/cases"): Sample("nina", const(INTAKE), wrong=("paula",)),
    ("GET", "/api/cases/{case_id}"): Sample("paula"),
    ("GET", "/api/cases/{case_id}/invitations"): Sample("nina", wrong=("paula", "carl")),
    ("POST", "/api/cases/{case_id}/invitations"): Sample(
        "nina", invitation_body, wrong=("paula", "carl")
    ),
    ("GET", "/api/cases/{case_id}/spaces"): Sample("paula"),
    ("POST", "/api/cases/{case_id}/spaces"): Sample(
        "nina", const({"name": "New space"}), wrong=NEUTRALS_ONLY
    ),
    ("GET", SPACE): Sample("paula", wrong=("carl",)),
    ("PATCH", SPACE): Sample("nina", const({"name": "Renamed"}), wrong=NEUTRALS_ONLY),
    ("POST", SPACE + "/members"): Sample("nina", new_observer_body, wrong=NEUTRALS_ONLY),
    ("DELETE", SPACE + "/members/{user_id}"): Sample("nina", wrong=NEUTRALS_ONLY),
    ("GET", SPACE + "/messages"): Sample("paula", wrong=("carl",)),
    ("POST", SPACE + "/messages"): Sample("paula", const({"body": "hello"}), wrong=("carl",)),
    ("POST", SPACE + "/read"): Sample("paula", const({"seq": 0}), wrong=("carl",)),
    ("GET", SPACE + "/files"): Sample("paula", wrong=("carl",)),
    ("POST", SPACE + "/files"): Sample("paula", const("a plain text file"), wrong=("carl",)),
    ("GET", SPACE + "/files/{file_id}"): Sample("paula", wrong=("carl",)),
    ("POST", "/api/cases/{case_id}/close"): Sample(
        "nina", close_body, wrong=NEUTRALS_ONLY, case="Case To Close"
    ),
    ("POST", "/api/cases/{case_id}/invitations/{invitation_id}/resend"): Sample(
        "nina", emailed_invitation, wrong=("paula", "carl")
    ),
    ("POST", "/api/cases/{case_id}/invitations/{invitation_id}/revoke"): Sample(
        "nina", emailed_invitation, wrong=("paula", "carl")
    ),
    ("POST", "/api/cases/{case_id}/mail-naming"): Sample(
        "nina", const({"reference": "M-1"}), wrong=("paula", "carl")
    ),
    ("POST", "/api/account/email"): Sample(
        "paula", const({"email": "paula@example.org", "password": PASSWORD})
    ),
    ("GET", "/api/account/notifications"): Sample("paula"),
    ("POST", "/api/account/notifications"): Sample("paula", digest_choice),
    ("POST", "/api/account/email/confirm/{token}"): Sample("anonymous", email_change_link),
    ("POST", "/api/password/forgot"): Sample("anonymous", const({"email": "nobody@example.org"})),
    ("GET", "/api/password/rules"): Sample("anonymous"),
    ("GET", "/api/password/reset/{token}"): Sample("anonymous", reset_link),
    ("POST", "/api/password/reset/{token}"): Sample("anonymous", reset_link),
    ("GET", "/api/invitations/{token}"): Sample("anonymous"),
    ("POST", "/api/invitations/{token}/accept"): Sample("anonymous", accept_body),
    ("GET", "/api/request-links/{handle}"): Sample("anonymous", link_open),
    ("GET", "/api/request-links/{handle}/slots"): Sample("anonymous", link_open),
    ("POST", "/api/request-links/{handle}/requests"): Sample("anonymous", new_request_form),
    ("POST", "/api/request-confirmations/{token}"): Sample("anonymous", confirmation_link),
    ("GET", "/api/respond/{token}"): Sample("anonymous", scheduling_request),
    ("GET", "/api/respond/{token}/slots"): Sample("anonymous", scheduling_request),
    ("POST", "/api/respond/{token}/answer"): Sample("anonymous", scheduling_request),
    ("POST", "/api/respond/{token}/consent"): Sample("anonymous", disclosed_request),
    ("GET", "/api/neutral/profile"): Sample("nina", wrong=("paula", "root")),
    ("PUT", "/api/neutral/profile"): Sample("nina", profile_body, wrong=("paula", "root")),
    ("GET", "/api/neutral/slots"): Sample("nina", link_open, wrong=("paula",)),
    ("GET", "/api/neutral/requests"): Sample("nina", wrong=("paula",)),
    ("GET", REQUEST): Sample("nina", pending_request, wrong=("paula", "otto")),
    ("POST", REQUEST + "/decision"): Sample("nina", pending_request, wrong=("paula", "otto")),
    ("POST", REQUEST + "/proposals"): Sample("nina", new_proposal, wrong=("paula", "otto")),
    ("POST", REQUEST + "/confirm"): Sample("nina", agreed_request, wrong=("paula", "otto")),
    ("GET", "/api/cases/{case_id}/sessions"): Sample("paula"),
    ("POST", "/api/cases/{case_id}/sessions"): Sample(
        "nina", session_body, wrong=("paula", "carl")
    ),
    ("POST", "/api/cases/{case_id}/sessions/{session_id}/reschedule"): Sample(
        "nina", scheduled_session, wrong=("paula", "carl")
    ),
    ("POST", "/api/cases/{case_id}/sessions/{session_id}/cancel"): Sample(
        "nina", scheduled_session, wrong=("paula", "carl")
    ),
    ("GET", "/api/calendar-feed"): Sample("paula"),
    ("POST", "/api/calendar-feed"): Sample("paula"),
    ("DELETE", "/api/calendar-feed"): Sample("paula"),
    ("GET", "/calendar/{token}.ics"): Sample("anonymous", calendar_feed),
    ("GET", "/api/cases/{case_id}/fees"): Sample("paula"),
    ("PUT", "/api/cases/{case_id}/fees"): Sample("nina", fee_terms, wrong=("paula", "carl")),
    ("POST", "/api/cases/{case_id}/fees/accept"): Sample(
        "paula", terms_to_accept, wrong=("carl", "nina")
    ),
    ("GET", "/api/cases/{case_id}/invoices"): Sample("paula"),
    ("GET", "/api/cases/{case_id}/invoices/draft"): Sample(
        "nina", invoice_lines, wrong=("paula", "carl")
    ),
    ("POST", "/api/cases/{case_id}/invoices"): Sample(
        "nina", invoice_lines, wrong=("paula", "carl")
    ),
    ("POST", CASE_INVOICE + "/credit"): Sample("nina", open_invoice, wrong=("paula", "carl")),
    ("POST", CASE_INVOICE + "/payments"): Sample("nina", open_invoice, wrong=("paula", "carl")),
    ("POST", "/api/cases/{case_id}/payments/{payment_id}/refund"): Sample(
        "nina", settled_card_payment, wrong=("paula", "carl"), ok=(409,)
    ),
    ("GET", INVOICE): Sample("paula", open_invoice, wrong=("peter", "otto")),
    ("GET", INVOICE + "/pdf"): Sample("paula", open_invoice, wrong=("peter", "otto")),
    ("GET", "/invoices/{invoice_id}/view"): Sample("paula", open_invoice, wrong=("peter", "otto")),
    ("POST", INVOICE + "/pay"): Sample(
        "paula", open_invoice, wrong=("peter", "otto", "carl", "nina"), ok=(409,)
    ),
    ("GET", "/invoices/{invoice_id}/pay"): Sample("anonymous"),
    ("GET", "/invoices/{invoice_id}"): Sample("anonymous"),  # a page shell: the API checks
    ("GET", "/billing"): Sample("anonymous"),  # a page shell: the API checks
    ("GET", "/closed"): Sample("anonymous"),
    ("GET", "/agreements/verify"): Sample("anonymous"),  # the public check page
    ("GET", "/api/payments/config"): Sample("paula"),
    ("GET", "/api/billing/ledger"): Sample("nina", wrong=("paula",)),
    ("POST", "/api/payments/webhook"): Sample("anonymous", ok=(409,)),
    ("POST", "/api/account/reauth"): Sample("paula", const({"password": PASSWORD})),
    ("GET", AGREEMENTS): Sample("paula", draft_agreement, wrong=("sam",)),
    ("POST", AGREEMENTS): Sample("nina", new_agreement_body, wrong=NEUTRALS_ONLY),
    ("GET", AGREEMENT): Sample("paula", draft_agreement, wrong=("sam",)),
    ("POST", AGREEMENT + "/versions"): Sample("nina", draft_agreement, wrong=NEUTRALS_ONLY),
    ("POST", AGREEMENT + "/proposals"): Sample("carl", draft_agreement, wrong=("paula", "nina")),
    ("GET", AGREEMENT + "/versions/{number}"): Sample("paula", draft_agreement, wrong=("sam",)),
    # without ?from=&to= the right caller gets as far as the check of the query
    ("GET", AGREEMENT + "/diff"): Sample("paula", draft_agreement, wrong=("sam",), ok=(400,)),
    ("GET", AGREEMENT + "/comments"): Sample("paula", draft_agreement, wrong=("sam",)),
    ("POST", AGREEMENT + "/comments"): Sample("paula", agreement_comment, wrong=("sam",)),
    ("POST", AGREEMENT + "/publish"): Sample("nina", publishable_agreement, wrong=NEUTRALS_ONLY),
    ("POST", AGREEMENT + "/sign"): Sample("paula", published_agreement, wrong=("carl", "sam")),
    ("GET", AGREEMENT + "/sealed.pdf"): Sample("paula", sealed_agreement, wrong=("sam",)),
    ("GET", AGREEMENT + "/sealed.sig"): Sample("paula", sealed_agreement, wrong=("sam",)),
    ("GET", "/api/cases/{case_id}/agreements/closing"): Sample("nina", wrong=NEUTRALS_ONLY),
    ("GET", "/api/agreements/seal-key"): Sample("anonymous"),
    # a JSON body instead of the two files: through to the check of the form
    ("POST", "/api/agreements/verify"): Sample("anonymous", ok=(400,)),
    ("GET", "/"): Sample("anonymous"),
    ("GET", "/static/vendor/{name}"): Sample("anonymous"),
    ("GET", "/static/{path}"): Sample("anonymous"),
}
PAGE_PREFIXES = (
    "/login",
    "/account/",
    "/admin/users",
    "/admin/mail",
    "/cases",
    "/invite/",
    "/password/",
    "/reset/",
    "/request/",
    "/respond/",
    "/neutral/",
)


async def special_session(w: World, kind: str) -> tuple[ApiClient, Any]:
    """A client in a particular sign-in stage, and the body that succeeds for it."""
    accounts = w.server.services.accounts
    name = f"{kind.replace('-', '')}{len(w.users)}"
    client = w.make_client()
    if kind == "password-stage":
        w.users[name] = await accounts.create_user(name, PASSWORD, must_change_password=True)
        await client.post("/api/login", {"username": name, "password": PASSWORD})
        return client, {"current_password": PASSWORD, "new_password": PASSWORD + " renewed"}
    w.users[name] = user = await accounts.create_user(name, PASSWORD)
    if kind in ("totp-stage", "totp-enabled", "totp-enrolling"):
        secret, _ = await accounts.totp_begin(user.id)
        totp = pyotp.TOTP(secret)
        if kind == "totp-enrolling":
            await client.post("/api/login", {"username": name, "password": PASSWORD})
            return client, {"code": totp.now()}
        codes = await accounts.totp_confirm(user.id, totp.now())
        await client.post("/api/login", {"username": name, "password": PASSWORD})
        if kind == "totp-stage":
            return client, {"code": codes[0]}
        await client.post("/api/login/totp", {"code": codes[0]})
        return client, {"password": PASSWORD, "code": codes[1]}
    await client.post("/api/login", {"username": name, "password": PASSWORD})
    return client, None


def special_token(path: str, w: World) -> str | None:
    if path.startswith("/api/password/reset/"):
        return w.ids["reset"]
    if path.startswith("/api/account/email/confirm/"):
        return w.ids["email_change"]
    if path.startswith("/api/request-confirmations/"):
        return w.ids["request_confirm"]
    if path.startswith("/api/respond/"):
        return w.ids["respond"]
    if path.startswith("/calendar/"):
        return w.ids["feed"]
    return None


def fill(path: str, w: World, token: str, case: str = "Case A") -> str:
    space = (
        w.ids.get("agreement_space", w.ids["space"])  # (a page shell needs none made)
        if "/agreements/" in path or (path.endswith("/agreements") and "{space_id}" in path)
        else w.ids["space"]
    )
    return (
        path.replace("{case_id}", w.cases[case])
        .replace("{space_id}", space)
        .replace("{agreement_id}", w.ids.get("agreement", "0" * 32))
        .replace("{number}", "1")
        .replace("{file_id}", w.ids["file"])
        .replace("{user_id}", w.ids["user"])
        .replace("{mail_id}", w.ids.get("mail", "0" * 32))
        .replace("{invitation_id}", w.ids.get("invitation", "0" * 32))
        .replace("{handle}", "nina")
        .replace("{request_id}", w.ids.get("request", "0" * 32))
        .replace("{session_id}", w.ids.get("session", "0" * 32))
        .replace("{invoice_id}", w.ids.get("invoice", "0" * 32))
        .replace("{payment_id}", w.ids.get("payment", "0" * 32))
        .replace("{token}", special_token(path, w) or token)
        .replace("{name}", "socket.io.esm.min.js")
        .replace("{path}", "css/caucus.css")
    )


def routes_of(w: World) -> list[tuple[str, str, Any]]:
    found = []
    for route in w.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD":
            continue
        found.append((route.method, path, route.handler))
    return found


def expect_refused(status: int, what: str) -> None:
    assert status in (401, 403, 404), what


async def test_every_route_is_declared_and_enforced(world: World) -> None:
    checked = 0
    await sample_space(world)
    for method, path, handler in routes_of(world):
        rule = access_of(handler)
        assert rule is not None, f"{method} {path} declares no access"
        if path == "/socket.io/":
            continue  # covered by the socket.io test below
        sample = SAMPLES.get((method, path))
        if sample is None and method == "GET" and path.startswith(PAGE_PREFIXES):
            sample = Sample("anonymous")
        assert sample is not None, f"no authorization sample for {method} {path}"
        what = f"{method} {path}"

        async def call(
            client: ApiClient,
            body: Any,
            method: str = method,
            path: str = path,
            case: str = sample.case,
        ) -> tuple[int, Any]:
            token = await world.invite("nina", world.cases["Case A"], "observer")
            status, payload, _ = await client.request(
                method,
                fill(path, world, token, case),
                body if method != "GET" else None,
                allow_redirects=False,
            )
            return status, payload

        body = await (sample.body or _none)(world)
        if sample.caller == "anonymous":
            status, payload = await call(world.make_client(), body)
            assert status < 400 or status in sample.ok, f"{what} as anonymous: {status} {payload}"
            checked += 1
            continue

        status, _ = await call(world.make_client(), body)
        expect_refused(status, f"{what} as anonymous")
        if rule.kind in ("admin", "neutral", "case", "space"):
            status, _ = await call(world.clients["peter"], body)
            expect_refused(status, f"{what} as a party of another case")
        for wrong in sample.wrong:
            status, _ = await call(world.clients[wrong], body)
            expect_refused(status, f"{what} as {wrong}")
        if sample.caller in world.clients:
            right = world.clients[sample.caller]
        else:
            right, body = await special_session(world, sample.caller)
            if rule.kind == "stage":
                # An active session of another user is the wrong stage for stage routes
                # that do not list "active".
                if "active" not in rule.stages:
                    status, _ = await call(world.clients["peter"], body)
                    expect_refused(status, f"{what} from an active session")
        status, payload = await call(right, body)
        assert status < 400 or status in sample.ok, f"{what} as {sample.caller}: {status} {payload}"
        checked += 1
    assert checked >= len(SAMPLES) - 1


async def publish_body(w: World) -> dict[str, Any]:
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return {"case_id": w.cases["Case A"], "sdp": sdp}


def case_a(w: World) -> dict[str, Any]:
    return {"case_id": w.cases["Case A"]}


EVENT_SAMPLES: dict[tuple[str, str], tuple[str, Callable[[World], Any]]] = {
    ("/case", "case.join"): ("paula", case_a),
    ("/case", "case.leave"): ("paula", case_a),
    ("/media", "media.join"): ("paula", case_a),
    ("/media", "media.publish"): ("carl", publish_body),
    ("/media", "media.tiles"): ("paula", lambda w: {**case_a(w), "tiles": []}),
    ("/media", "media.leave"): ("paula", case_a),
    ("/spaces", "space.subscribe"): ("paula", sample_space),
    ("/spaces", "space.unsubscribe"): ("paula", sample_space),
    ("/spaces", "message.send"): ("paula", send_payload),
    ("/spaces", "message.edit"): ("paula", edit_payload),
    ("/spaces", "message.delete"): ("nina", lambda w: message_by(w, "paula")),
    **LIVE_EVENT_SAMPLES,
    **RECORDING_EVENT_SAMPLES,
}
# Events the right caller sends first (with the case payload) on the same connection.
# An entry may also be (event, payload maker) for a payload of its own.
EVENT_PRELUDES: dict[tuple[str, str], tuple[Any, ...]] = {
    ("/media", "media.publish"): ("media.join",),
    ("/media", "media.tiles"): ("media.join",),
    ("/media", "media.leave"): ("media.join",),
    **LIVE_EVENT_PRELUDES,
    **RECORDING_EVENT_PRELUDES,
}
WRONG_CALLERS = {**LIVE_WRONG_CALLERS, **RECORDING_WRONG_CALLERS}


async def test_every_socket_event_is_enforced(world: World) -> None:
    namespaces = world.server.app[NAMESPACES]
    seen = 0
    for namespace in namespaces:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect(world, None, namespace.namespace)
        for name in namespace.events:
            assert (namespace.namespace, name) in EVENT_SAMPLES, f"no sample for {name}"
            caller, payload_of = EVENT_SAMPLES[(namespace.namespace, name)]
            payload = payload_of(world)
            if inspect.isawaitable(payload):
                payload = await payload
            outsider = await connect(world, world.clients["peter"], namespace.namespace)
            reply = await outsider.call(name, payload, namespace=namespace.namespace, timeout=10)
            assert reply["ok"] is False and reply["error"]["code"] in ("not_found", "forbidden")
            await outsider.disconnect()
            for wrong in WRONG_CALLERS.get((namespace.namespace, name), ()):
                member = await connect(world, world.clients[wrong], namespace.namespace)
                reply = await member.call(name, payload, namespace=namespace.namespace, timeout=10)
                assert reply["ok"] is False and reply["error"]["code"] == "forbidden", (name, wrong)
                await member.disconnect()
            right = await connect(world, world.clients[caller], namespace.namespace)
            for before in EVENT_PRELUDES.get((namespace.namespace, name), ()):
                before, make = before if isinstance(before, tuple) else (before, case_a)
                body = make(world)
                if inspect.isawaitable(body):
                    body = await body
                reply = await right.call(before, body, namespace=namespace.namespace, timeout=10)
                assert reply["ok"] is True, reply
            reply = await right.call(name, payload, namespace=namespace.namespace, timeout=10)
            assert reply["ok"] is True, reply
            await right.disconnect()
            seen += 1
    assert seen == len(EVENT_SAMPLES)
