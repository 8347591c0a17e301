// Shared client for the Caucus HTTP API (see docs/api.md).
// JSON in and out; every state-changing request carries the CSRF token learned from
// GET /api/session; error answers become ApiError objects carrying the server's code and message.

const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * An error answer from the API: `code` is the machine code, `message` the sentence for people,
 * `details` whatever else the error object carried (the next open slots of a slot taken, say).
 */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.details = details;
  }
}

let sessionPromise = null;

async function fetchSession() {
  const response = await reaching(fetch("/api/session", {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    cache: "no-store",
  }));
  if (!response.ok) {
    throw await errorFrom(response);
  }
  return reaching(response.json());
}

// A page being left: the browser aborts its requests in flight (Firefox rejects them with a
// NetworkError). That is no failure to report: such a request simply never answers.
let leaving = false;
window.addEventListener("beforeunload", () => {
  leaving = true;
});
window.addEventListener("pagehide", () => {
  leaving = true;
});
window.addEventListener("pageshow", () => {
  leaving = false;
});

/** `request`'s response; a request the page's leaving aborted never settles. */
async function reaching(request) {
  try {
    return await request;
  } catch (error) {
    if (leaving) {
      return new Promise(() => {});
    }
    throw error;
  }
}

/** The current session, fetched once per page; `refresh` asks the server again. */
export function getSession({ refresh = false } = {}) {
  if (refresh || sessionPromise === null) {
    sessionPromise = fetchSession();
    sessionPromise.catch(() => {
      sessionPromise = null;
    });
  }
  return sessionPromise;
}

async function errorFrom(response) {
  let code = "http_" + response.status;
  let message = `The server answered ${response.status} ${response.statusText}.`.replace(" .", ".");
  let details = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      details = body.error;
    }
  } catch {
    // Not JSON: keep the generic sentence.
  }
  const retry = response.headers.get("Retry-After");
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : null;
  return new ApiError(response.status, code, message, retryAfter, details);
}

/** Calls the API; resolves to the parsed JSON answer, rejects with ApiError. */
export async function api(method, path, body = undefined) {
  method = method.toUpperCase();
  const headers = { Accept: "application/json" };
  if (STATE_CHANGING.has(method)) {
    const session = await getSession();
    headers["X-CSRF-Token"] = session.csrf_token;
  }
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await reaching(fetch(path, init));
  } catch {
    throw new ApiError(0, "network_error", "The server could not be reached. Check your connection and try again.");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (error.code === "account_removed") {
      window.location.assign("/closed"); // says why this browser was signed out
    }
    throw error;
  }
  if (response.status === 204) {
    return null;
  }
  return reaching(response.json());
}

/** Where a session in `stage` must go before it can use the rest of the site. */
export function pageForStage(stage) {
  switch (stage) {
    case "anonymous":
      return "/login";
    case "totp_required":
      return "/login/totp";
    case "password_change_required":
      return "/account/password";
    default:
      return null;
  }
}

/** A same-site path taken from `?next=`, or `fallback`. */
export function nextPath(fallback = "/cases") {
  const next = new URLSearchParams(window.location.search).get("next");
  if (next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\")) {
    return next;
  }
  return fallback;
}

/** Sends the browser on after a stage change (login, code, password change). */
export function continueFromStage(stage) {
  const page = pageForStage(stage);
  if (page === null) {
    window.location.assign(nextPath());
    return;
  }
  const next = new URLSearchParams(window.location.search).get("next");
  window.location.assign(next && page !== "/login" ? `${page}?next=${encodeURIComponent(next)}` : page);
}

/**
 * Resolves to the session when its stage is one of `allowed`; otherwise routes the user
 * (anonymous → /login, totp_required → /login/totp, password_change_required →
 * /account/password, active → the page they came for) and never resolves.
 */
export async function requireStage(...allowed) {
  if (allowed.length === 0) {
    allowed = ["active"];
  }
  const session = await getSession();
  if (allowed.includes(session.stage)) {
    return session;
  }
  if (session.ended === "account_removed") {
    window.location.replace("/closed"); // rather than a bare sign-in page: it says why
    return new Promise(() => {});
  }
  const page = pageForStage(session.stage);
  if (page === null) {
    window.location.replace(nextPath());
  } else {
    const signInPages = ["/login", "/login/totp", "/account/password"];
    const here = window.location.pathname + window.location.search;
    const next = signInPages.includes(window.location.pathname) ? nextPath(null) : here;
    window.location.replace(next ? `${page}?next=${encodeURIComponent(next)}` : page);
  }
  return new Promise(() => {});
}

/** Ends the session and returns to the sign-in page. */
export async function logout() {
  try {
    await api("POST", "/api/logout");
  } finally {
    sessionPromise = null;
    window.location.assign("/login");
  }
}
