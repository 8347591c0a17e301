// /neutral/requests: the neutral's queue of confirmed requests, newest first.

import { api, requireStage } from "./api.js";
import { byId, el, formatDate, humanize, processName, requestStatusName } from "./dom.js";
import { showError } from "./feedback.js";
import { renderHeader } from "./header.js";

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

function row(request) {
  const href = `/neutral/requests/${encodeURIComponent(request.id)}`;
  const answers = request.answers || { accepted: 0, total: 0 };
  const requester = request.requester || {};
  return el(
    "tr",
    { dataset: { testid: "request-row", status: request.status } },
    el("td", {}, el("a", { href, dataset: { testid: "request-link" } }, request.reference)),
    el("td", {}, el("span", { class: "member-name" }, request.title), " ", el("span", { class: "hint" }, processName(request.process))),
    el("td", {}, requester.name || "", " ", el("span", { class: "hint" }, `${humanize(requester.role)}, ${requester.email || ""}`)),
    el("td", { dataset: { testid: "request-status" } }, requestStatusName(request.status)),
    el("td", { dataset: { testid: "request-hits" } }, String(request.hits ?? 0)),
    el("td", { dataset: { testid: "request-answers" } }, `${answers.accepted}/${answers.total}`),
    el("td", {}, formatDate(request.created_at, { withTime: true })),
  );
}

if (session.user.role !== "neutral") {
  showError(byId("page-error"), new Error("Only neutrals receive requests."));
} else {
  try {
    const { requests } = await api("GET", "/api/neutral/requests");
    byId("no-requests").hidden = requests.length > 0;
    byId("request-table").hidden = requests.length === 0;
    byId("request-rows").replaceChildren(...requests.map(row));
  } catch (error) {
    showError(byId("page-error"), error);
  }
}
