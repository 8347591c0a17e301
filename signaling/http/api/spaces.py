"""Space routes: spaces of a case, their members, messages and files; closing a case.

Every route lives under ``/api/cases/{case_id}`` so the case access rule applies first;
routes that show or change a space's contents also require membership of that space
(access kind ``space``), so a space one does not belong to answers 404 like a missing one.
Files are uploaded as the raw request body (one POST per file) and streamed into the
vault; downloads decrypt only the chunks a ``Range`` asks for.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import CaucusError, IntegrityFailure, InvalidInput
from rooms.spaces.files import SpaceFile
from rooms.spaces.filetypes import PDF
from rooms.spaces.messages import MAX_BODY
from rooms.spaces.spaces import MAX_NAME
from rooms.vault.format import VaultIntegrityError
from signaling.http.access import MEMBER, SECURITY_HEADERS, access, read_json, user_of
from signaling.http.state import MAIL_SENDER, REALTIME
from signaling.refusals import REFUSALS
from signaling.services import SERVICES

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

SPACES = "/api/cases/{case_id}/spaces"
SPACE = SPACES + "/{space_id}"
UPLOAD_PIECE = 256 * 1024
FILE_NAME_HEADER = "X-File-Name"


class Body(BaseModel):
    """A request body: no unknown fields, no type coercion (``"yes"`` is not a boolean)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class NewSpace(Body):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    member_ids: list[str] = Field(default_factory=list, max_length=200)


class SpaceChange(Body):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    archived: bool | None = None


class NewMember(Body):
    user_id: str = Field(min_length=1, max_length=32)


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    body: str = Field(min_length=1, max_length=MAX_BODY)


class ReadMarker(Body):
    seq: int = Field(ge=0)


class CloseCase(Body):
    confirm_title: str = Field(min_length=1, max_length=300)
    #: Close although signatories have not downloaded their sealed agreements (each
    #: signatory with a verified address is mailed their copy either way).
    confirm_undownloaded_agreements: bool = False


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["case_id"], request.match_info["space_id"]


# -- spaces --------------------------------------------------------------------------------
@routes.get(SPACES)
@access("case", case_roles=CASE_ROLES)
async def list_spaces(request: web.Request) -> web.Response:
    member = request[MEMBER]
    items = await request.app[SERVICES].spaces.spaces_for(member.case_id, member)
    return web.json_response(
        {"spaces": items, "can_manage": member.role in NEUTRAL_ROLES, "my_role": member.role}
    )


@routes.post(SPACES)
@access("case", case_roles=NEUTRAL_ROLES)
async def create_space(request: web.Request) -> web.Response:
    body = await read_json(request, NewSpace)
    member = request[MEMBER]
    spaces = request.app[SERVICES].spaces
    space = await spaces.create(member.case_id, member, body.name, body.member_ids)
    members = await spaces.members(member.case_id, space.id)
    return web.json_response({"space": space.public(), "members": members}, status=201)


@routes.get(SPACE)
@access("space", case_roles=CASE_ROLES)
async def get_space(request: web.Request) -> web.Response:
    case_id, space_id = _ids(request)
    spaces = request.app[SERVICES].spaces
    space = await spaces.get(case_id, space_id)
    member = request[MEMBER]
    return web.json_response(
        {
            "space": space.public(),
            "members": await spaces.members(case_id, space_id),
            "my_role": member.role,
            "my_user_id": member.user_id,
            "can_manage": member.role in NEUTRAL_ROLES,
        }
    )


@routes.patch(SPACE)
@access("case", case_roles=NEUTRAL_ROLES)
async def change_space(request: web.Request) -> web.Response:
    body = await read_json(request, SpaceChange)
    case_id, space_id = _ids(request)
    space = await request.app[SERVICES].spaces.update(
        case_id, space_id, request[MEMBER], name=body.name, archived=body.archived
    )
    return web.json_response({"space": space.public()})


@routes.post(SPACE + "/members")
@access("case", case_roles=NEUTRAL_ROLES)
async def add_member(request: web.Request) -> web.Response:
    body = await read_json(request, NewMember)
    case_id, space_id = _ids(request)
    spaces = request.app[SERVICES].spaces
    await spaces.add_member(case_id, space_id, request[MEMBER], body.user_id)
    return web.json_response({"members": await spaces.members(case_id, space_id)})


@routes.delete(SPACE + "/members/{user_id}")
@access("case", case_roles=NEUTRAL_ROLES)
async def remove_member(request: web.Request) -> web.Response:
    case_id, space_id = _ids(request)
    spaces = request.app[SERVICES].spaces
    await spaces.remove_member(case_id, space_id, request[MEMBER], request.match_info["user_id"])
    return web.json_response({"members": await spaces.members(case_id, space_id)})


# -- messages ------------------------------------------------------------------------------
def _int_query(request: web.Request, name: str, default: int | None, low: int, high: int):
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d{1,10}", raw) or not low <= int(raw) <= high:
        raise InvalidInput(f"The query parameter {name!r} must be a number {low}..{high}.")
    return int(raw)


@routes.get(SPACE + "/messages")
@access("space", case_roles=CASE_ROLES)
async def list_messages(request: web.Request) -> web.Response:
    case_id, space_id = _ids(request)
    before = _int_query(request, "before", None, 1, 2**31 - 1)
    limit = _int_query(request, "limit", 50, 1, 200)
    items, more = await request.app[SERVICES].spaces.history(
        case_id, space_id, before=before, limit=limit
    )
    return web.json_response({"messages": [m.public() for m in items], "has_more": more})


@routes.post(SPACE + "/messages")
@access("space", case_roles=CASE_ROLES)
async def post_message(request: web.Request) -> web.Response:
    body = await read_json(request, NewMessage)
    case_id, space_id = _ids(request)
    message = await request.app[SERVICES].spaces.post(
        case_id, space_id, user_of(request).id, body.body
    )
    return web.json_response({"message": message.public()}, status=201)


@routes.post(SPACE + "/read")
@access("space", case_roles=CASE_ROLES)
async def mark_read(request: web.Request) -> web.Response:
    body = await read_json(request, ReadMarker)
    case_id, space_id = _ids(request)
    marker = await request.app[SERVICES].spaces.mark_read(
        case_id, space_id, user_of(request).id, body.seq
    )
    return web.json_response({"last_read_seq": marker})


# -- files ---------------------------------------------------------------------------------
@routes.get(SPACE + "/files")
@access("space", case_roles=CASE_ROLES)
async def list_files(request: web.Request) -> web.Response:
    case_id, space_id = _ids(request)
    files = await request.app[SERVICES].spaces.files(case_id, space_id)
    return web.json_response({"files": [f.public() for f in files]})


class UploadInterrupted(CaucusError):
    code = "upload_interrupted"
    status = 400


async def _body_pieces(request: web.Request):
    try:
        async for piece in request.content.iter_chunked(UPLOAD_PIECE):
            yield piece
    except (ConnectionError, OSError, web.HTTPException) as exc:
        raise UploadInterrupted("The upload was interrupted.") from exc
    except Exception as exc:
        # aiohttp reports a body cut short as a payload error of its own.
        if type(exc).__module__.startswith("aiohttp"):
            raise UploadInterrupted("The upload was interrupted.") from exc
        raise


@routes.post(SPACE + "/files")
@access("space", case_roles=CASE_ROLES)
async def upload_file(request: web.Request) -> web.Response:
    """The raw request body is the file; its name comes percent-encoded in X-File-Name."""
    case_id, space_id = _ids(request)
    name = unquote(request.headers.get(FILE_NAME_HEADER, ""), errors="replace")
    services = request.app[SERVICES]
    record = await services.spaces.upload(
        case_id,
        space_id,
        user_of(request).id,
        name,
        _body_pieces(request),
        max_bytes=services.settings.max_upload_bytes,
        expected_size=request.content_length,
    )
    return web.json_response({"file": record.public()}, status=201)


class RangeNotSatisfiable(Exception):
    pass


#: Longest offset a Range may name: 19 digits (below 2**63) is more than any file here.
MAX_RANGE_DIGITS = 19
RANGE_RE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.ASCII)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single range ``header`` asks for, as inclusive offsets; None for the whole file.

    Malformed or multi-range headers are ignored (the whole file is sent), as HTTP allows.
    A range no file could satisfy (an offset of more than 19 digits) is refused as
    unsatisfiable, never parsed into a huge number; a huge suffix is the whole file.
    """
    if not header:
        return None
    match = RANGE_RE.fullmatch(header)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1).lstrip("0") or "0", match.group(2).lstrip("0") or "0"
    if match.group(1) == "":
        if len(last) > MAX_RANGE_DIGITS:
            return (0, size - 1) if size else None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    if len(first) > MAX_RANGE_DIGITS:
        raise RangeNotSatisfiable
    start = int(first)
    if match.group(2) == "":
        end = size - 1
    elif len(last) > MAX_RANGE_DIGITS:
        end = size - 1  # past the end of any file: up to the end
    else:
        if int(last) < start:
            raise RangeNotSatisfiable
        end = min(int(last), size - 1)
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


def _disposition(record: SpaceFile, inline: bool) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", record.name)[:100] or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(record.name, safe='')}"


def _previewable(content_type: str) -> bool:
    return content_type.startswith(("image/", "video/")) or content_type == PDF


@routes.get(SPACE + "/files/{file_id}")
@access("space", case_roles=CASE_ROLES)
async def download_file(request: web.Request) -> web.StreamResponse:
    """The file's contents; ``?inline=1`` previews pictures, PDF and video in the page.

    Honours a single ``Range`` (206 + Content-Range; 416 when outside the file), decrypting
    only the chunks it covers. Damage found before the headers are sent answers a JSON
    ``integrity_error``; found later, the connection is cut so the download fails.
    """
    case_id, space_id = _ids(request)
    spaces = request.app[SERVICES].spaces
    record = await spaces.file(case_id, space_id, request.match_info["file_id"])
    reader = await spaces.open_file(case_id, record)
    pieces = None
    try:
        size = reader.size
        inline = request.query.get("inline") == "1" and _previewable(record.content_type)
        headers: dict[str, Any] = {
            **SECURITY_HEADERS,
            "Content-Type": record.content_type,
            "Content-Disposition": _disposition(record, inline),
            "Accept-Ranges": "bytes",
            "Cache-Control": "private, no-store",
        }
        if inline:
            # Same-origin pages may frame the preview (the PDF viewer); nobody else.
            headers["X-Frame-Options"] = "SAMEORIGIN"
            headers["Content-Security-Policy"] = SECURITY_HEADERS[
                "Content-Security-Policy"
            ].replace("frame-ancestors 'none'", "frame-ancestors 'self'")
        try:
            wanted = byte_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable:
            REFUSALS.count("range")
            return web.json_response(
                {"error": {"code": "range_not_satisfiable", "message": "Outside the file."}},
                status=416,
                headers={**SECURITY_HEADERS, "Content-Range": f"bytes */{size}"},
            )
        status = 200
        start, end = 0, size - 1
        if wanted is not None:
            start, end = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1 if size else 0)
        if size:
            pieces = reader.read_range(start, end)
        first = b""
        if pieces is not None:
            try:
                first = await anext(pieces)
            except VaultIntegrityError as exc:
                log.warning("file failed authentication", extra={"file": record.id})
                raise IntegrityFailure(
                    "This file is damaged and cannot be read (its encrypted copy failed "
                    "the integrity check)."
                ) from exc
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        await response.write(first)
        if pieces is not None:
            try:
                async for piece in pieces:
                    await response.write(piece)
            except VaultIntegrityError:
                log.warning("file failed authentication mid-download", extra={"file": record.id})
                if request.transport is not None:
                    request.transport.abort()  # a failed download, never a short file
                return response
        await response.write_eof()
        return response
    finally:
        if pieces is not None:
            await pieces.aclose()
        await reader.close()


# -- closing the case ----------------------------------------------------------------------
@routes.post("/api/cases/{case_id}/close")
@access("case", case_roles=("neutral",))
async def close_case(request: web.Request) -> web.Response:
    body = await read_json(request, CloseCase)
    member = request[MEMBER]
    await request.app[SERVICES].closing.close(
        member.case_id,
        member,
        body.confirm_title,
        confirmed=body.confirm_undownloaded_agreements,
    )
    request.app[MAIL_SENDER].wake()
    await request.app[REALTIME].case.closed(member.case_id)
    return web.json_response({"closed": True, "case_id": member.case_id})
