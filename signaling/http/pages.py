"""The browser pages and their static files (plain ES modules, no build step)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from signaling.http.access import access

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
PAGES_DIR = WEB_DIR / "pages"
STATIC_DIR = WEB_DIR / "static"
VENDOR_FILES = {
    "socket.io.esm.min.js": WEB_DIR / "node_modules/socket.io-client/dist/socket.io.esm.min.js",
    "socket.io.esm.min.js.map": WEB_DIR
    / "node_modules/socket.io-client/dist/socket.io.esm.min.js.map",
}

PAGES = {
    "/login": "login.html",
    "/login/totp": "login-totp.html",
    "/password/forgot": "password-forgot.html",
    "/reset/{token}": "password-reset.html",
    "/account/password": "account-password.html",
    "/account/security": "account-security.html",
    "/account/email/confirm/{token}": "account-email-confirm.html",
    "/admin/users": "admin-users.html",
    "/admin/mail": "admin-mail.html",
    "/cases": "cases.html",
    "/cases/new": "case-new.html",
    "/cases/{case_id}": "case.html",
    "/cases/{case_id}/spaces": "spaces.html",
    "/cases/{case_id}/spaces/{space_id}": "space.html",
    "/cases/{case_id}/spaces/{space_id}/agreements/{agreement_id}": "agreement.html",
    "/cases/{case_id}/close": "case-close.html",
    "/cases/{case_id}/live": "live.html",
    "/invite/{token}": "invite.html",
    "/request/confirm/{token}": "request-confirm.html",
    "/request/{handle}": "request.html",
    "/respond/{token}": "respond.html",
    "/neutral/availability": "neutral-availability.html",
    "/neutral/requests": "neutral-requests.html",
    "/neutral/requests/{request_id}": "neutral-request.html",
    "/invoices/{invoice_id}": "invoice.html",
    "/billing": "billing.html",
    "/agreements/verify": "agreement-verify.html",
    "/closed": "closed.html",
}

routes = web.RouteTableDef()


def _page(name: str):
    @access("public")
    async def page(_request: web.Request) -> web.StreamResponse:
        # Pages are shells: the data they show comes from the API, which checks access.
        return web.FileResponse(PAGES_DIR / name, headers={"Cache-Control": "no-cache"})

    page.__name__ = f"page_{name.removesuffix('.html').replace('-', '_')}"
    return page


for path, name in PAGES.items():
    routes.get(path)(_page(name))


@routes.get("/")
@access("public")
async def root(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/cases")


@routes.get("/static/vendor/{name}")
@access("public")
async def vendor(request: web.Request) -> web.StreamResponse:
    path = VENDOR_FILES.get(request.match_info["name"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


@routes.get("/static/{path:.+}")
@access("public")
async def static(request: web.Request) -> web.StreamResponse:
    relative = Path(request.match_info["path"])
    target = (STATIC_DIR / relative).resolve()
    if not target.is_relative_to(STATIC_DIR) or not target.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(target, headers={"Cache-Control": "no-cache"})
