"""Settlement agreement routes (docs/agreements.md).

Drafting, signing and downloads live under a space (``/api/cases/{case_id}/spaces/
{space_id}/agreements``) with the access kind ``space``: an agreement of a space one is not
a member of answers 404 exactly like one that does not exist. The close-case listing is
the case's neutral's. The seal key and verification are public: anyone holding a sealed
PDF and its signature file can check them, without an account and after the case is gone.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.agreements.drafts import MAX_COMMENT
from rooms.agreements.records import SIGNING_ROLES
from rooms.agreements.seal_file import MAX_SIGNATURE_FILE
from rooms.agreements.text import (
    MAX_CLAUSE,
    MAX_CLAUSES,
    MAX_HEADING,
    MAX_TITLE,
    AgreementText,
    agreement_text,
)
from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import InvalidInput, PayloadTooLarge
from signaling.http.access import (
    MEMBER,
    SECURITY_HEADERS,
    access,
    client_address,
    read_json,
    session_of,
)
from signaling.services import SERVICES

routes = web.RouteTableDef()

SPACE = "/api/cases/{case_id}/spaces/{space_id}"
AGREEMENTS = SPACE + "/agreements"
AGREEMENT = AGREEMENTS + "/{agreement_id}"
#: The largest sealed PDF the public check takes.
MAX_VERIFY_PDF = 20 * 1024 * 1024


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClauseBody(Body):
    heading: str = Field(default="", max_length=MAX_HEADING * 4)
    body: str = Field(min_length=1, max_length=MAX_CLAUSE * 2)


class TextBody(Body):
    title: str = Field(min_length=1, max_length=MAX_TITLE * 4)
    clauses: list[ClauseBody] = Field(min_length=1, max_length=MAX_CLAUSES)

    def text(self) -> AgreementText:
        return agreement_text(self.title, [(c.heading, c.body) for c in self.clauses])


class EditBody(TextBody):
    based_on: int = Field(ge=1)
    adopted_from: int | None = Field(default=None, ge=1)


class ProposalBody(TextBody):
    based_on: int = Field(ge=1)


class CommentBody(Body):
    version: int = Field(ge=1)
    clause: int = Field(ge=1)
    body: str = Field(min_length=1, max_length=MAX_COMMENT)


class PublishBody(Body):
    version: int = Field(ge=1)
    signatory_ids: list[str] = Field(min_length=1, max_length=50)


class SignBody(Body):
    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    full_name: str = Field(min_length=1, max_length=400)
    confirm: bool


def _ids(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["case_id"], info["space_id"], info["agreement_id"]


async def _view(
    request: web.Request, status: int = 200, agreement_id: str | None = None, **more: Any
) -> web.Response:
    case_id, space_id = request.match_info["case_id"], request.match_info["space_id"]
    agreement_id = agreement_id or request.match_info["agreement_id"]
    view = await request.app[SERVICES].agreements.view(
        case_id, space_id, agreement_id, request[MEMBER]
    )
    return web.json_response({**view, **more}, status=status)


def _version_number(request: web.Request, name: str) -> int:
    raw = request.match_info.get(name) or request.query.get(name, "")
    if not re.fullmatch(r"[1-9][0-9]{0,8}", raw):
        raise InvalidInput(f"{name!r} is a version number (1, 2, ...).", code="invalid_version")
    return int(raw)


# -- drafting ------------------------------------------------------------------------------
@routes.get(AGREEMENTS)
@access("space", case_roles=CASE_ROLES)
async def list_agreements(request: web.Request) -> web.Response:
    info = request.match_info
    items = await request.app[SERVICES].agreements.listing(info["case_id"], info["space_id"])
    member = request[MEMBER]
    return web.json_response(
        {"agreements": items, "can_create": member.role in NEUTRAL_ROLES, "my_role": member.role}
    )


@routes.post(AGREEMENTS)
@access("space", case_roles=NEUTRAL_ROLES)
async def create_agreement(request: web.Request) -> web.Response:
    body = await read_json(request, TextBody)
    info = request.match_info
    agreement_id = await request.app[SERVICES].agreements.create(
        info["case_id"], info["space_id"], request[MEMBER], body.text()
    )
    return await _view(request, 201, agreement_id)


@routes.get(AGREEMENT)
@access("space", case_roles=CASE_ROLES)
async def get_agreement(request: web.Request) -> web.Response:
    return await _view(request)


@routes.post(AGREEMENT + "/versions")
@access("space", case_roles=NEUTRAL_ROLES)
async def edit_agreement(request: web.Request) -> web.Response:
    body = await read_json(request, EditBody)
    case_id, space_id, agreement_id = _ids(request)
    number, voided = await request.app[SERVICES].agreements.edit(
        case_id,
        space_id,
        agreement_id,
        request[MEMBER],
        body.text(),
        based_on=body.based_on,
        adopted_from=body.adopted_from,
    )
    return await _view(request, 201, version=number, voided_signatures=voided)


@routes.post(AGREEMENT + "/proposals")
@access("space", case_roles=("counsel",))
async def propose_change(request: web.Request) -> web.Response:
    body = await read_json(request, ProposalBody)
    case_id, space_id, agreement_id = _ids(request)
    number = await request.app[SERVICES].agreements.propose(
        case_id, space_id, agreement_id, request[MEMBER], body.text(), based_on=body.based_on
    )
    return await _view(request, 201, version=number)


@routes.get(AGREEMENT + "/versions/{number}")
@access("space", case_roles=CASE_ROLES)
async def get_version(request: web.Request) -> web.Response:
    case_id, space_id, agreement_id = _ids(request)
    version = await request.app[SERVICES].agreements.version(
        case_id, space_id, agreement_id, _version_number(request, "number")
    )
    return web.json_response({"version": version})


@routes.get(AGREEMENT + "/diff")
@access("space", case_roles=CASE_ROLES)
async def compare_versions(request: web.Request) -> web.Response:
    case_id, space_id, agreement_id = _ids(request)
    diff = await request.app[SERVICES].agreements.compare(
        case_id,
        space_id,
        agreement_id,
        _version_number(request, "from"),
        _version_number(request, "to"),
    )
    return web.json_response(diff)


@routes.get(AGREEMENT + "/comments")
@access("space", case_roles=CASE_ROLES)
async def list_comments(request: web.Request) -> web.Response:
    case_id, space_id, agreement_id = _ids(request)
    items = await request.app[SERVICES].agreements.comments(case_id, space_id, agreement_id)
    return web.json_response({"comments": items})


@routes.post(AGREEMENT + "/comments")
@access("space", case_roles=CASE_ROLES)
async def add_comment(request: web.Request) -> web.Response:
    body = await read_json(request, CommentBody)
    case_id, space_id, agreement_id = _ids(request)
    comment = await request.app[SERVICES].agreements.comment(
        case_id, space_id, agreement_id, request[MEMBER], body.version, body.clause, body.body
    )
    return web.json_response({"comment": comment}, status=201)


# -- signing -------------------------------------------------------------------------------
@routes.post(AGREEMENT + "/publish")
@access("space", case_roles=NEUTRAL_ROLES)
async def publish_agreement(request: web.Request) -> web.Response:
    body = await read_json(request, PublishBody)
    case_id, space_id, agreement_id = _ids(request)
    await request.app[SERVICES].agreements.publish(
        case_id, space_id, agreement_id, request[MEMBER], body.version, body.signatory_ids
    )
    return await _view(request)


@routes.post(AGREEMENT + "/sign")
@access("space", case_roles=SIGNING_ROLES)
async def sign_agreement(request: web.Request) -> web.Response:
    body = await read_json(request, SignBody)
    if body.confirm is not True:
        raise InvalidInput("Confirm that you sign this text.", code="not_confirmed")
    case_id, space_id, agreement_id = _ids(request)
    sealed = await request.app[SERVICES].agreements.sign(
        case_id,
        space_id,
        agreement_id,
        request[MEMBER],
        session_of(request).token_hash,
        document_sha256=body.document_sha256,
        full_name=body.full_name,
        client_address=client_address(request),
    )
    return await _view(request, sealed=sealed)


def _download(data: bytes, content_type: str, filename: str) -> web.Response:
    return web.Response(
        body=data,
        headers={
            **SECURITY_HEADERS,
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


@routes.get(AGREEMENT + "/sealed.pdf")
@access("space", case_roles=CASE_ROLES)
async def download_sealed_pdf(request: web.Request) -> web.Response:
    case_id, space_id, agreement_id = _ids(request)
    pdf = await request.app[SERVICES].agreements.sealed_pdf(
        case_id, space_id, agreement_id, request[MEMBER]
    )
    return _download(pdf, "application/pdf", f"agreement-{agreement_id}.pdf")


@routes.get(AGREEMENT + "/sealed.sig")
@access("space", case_roles=CASE_ROLES)
async def download_signature(request: web.Request) -> web.Response:
    case_id, space_id, agreement_id = _ids(request)
    text = await request.app[SERVICES].agreements.signature_file(case_id, space_id, agreement_id)
    return _download(
        text.encode("ascii"), "text/plain; charset=us-ascii", f"agreement-{agreement_id}.sig"
    )


# -- closing, the seal key, verification ---------------------------------------------------
@routes.get("/api/cases/{case_id}/agreements/closing")
@access("case", case_roles=("neutral",))
async def closing_list(request: web.Request) -> web.Response:
    listing = await request.app[SERVICES].agreements.closing_list(request.match_info["case_id"])
    ready = all(s["downloaded"] for a in listing for s in a["signatories"])
    return web.json_response({"agreements": listing, "all_downloaded": ready})


@routes.get("/api/agreements/seal-key")
@access("public")
async def seal_key(request: web.Request) -> web.Response:
    public = request.app[SERVICES].agreements.seal_key.public
    return web.json_response(
        {"algorithm": "Ed25519", "key_id": public.key_id, "public_key_pem": public.pem()}
    )


async def _read_part(part: Any, limit: int, what: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"The {what} is larger than {limit} bytes.")
    return bytes(data)


@routes.post("/api/agreements/verify")
@access("public")
async def verify_agreement(request: web.Request) -> web.Response:
    """multipart/form-data with the parts ``pdf`` and ``signature`` (the two files)."""
    if request.content_length is not None and request.content_length > MAX_VERIFY_PDF + 65536:
        raise PayloadTooLarge(f"A sealed PDF is at most {MAX_VERIFY_PDF} bytes here.")
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidInput(
            "Send the PDF and the signature file as multipart/form-data (parts 'pdf' and "
            "'signature').",
            code="invalid_form",
        )
    reader = await request.multipart()
    parts: dict[str, bytes] = {}
    while (part := await reader.next()) is not None:
        name = getattr(part, "name", None)
        if name not in ("pdf", "signature") or name in parts:
            raise InvalidInput(
                "Only the parts 'pdf' and 'signature', once each.", code="invalid_form"
            )
        limit = MAX_VERIFY_PDF if name == "pdf" else MAX_SIGNATURE_FILE + 1
        parts[name] = await _read_part(part, limit, "PDF" if name == "pdf" else "signature file")
    if set(parts) != {"pdf", "signature"}:
        raise InvalidInput("Send both the PDF and its signature file.", code="invalid_form")
    result = await request.app[SERVICES].agreements.verify(parts["pdf"], parts["signature"])
    return web.json_response(result)
