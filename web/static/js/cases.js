// /cases: the cases the signed-in user belongs to; neutrals also get the way to open a new one.

import { api, requireStage } from "./api.js";
import { byId, el, humanize, processName, roleName } from "./dom.js";
import { showError } from "./feedback.js";
import { renderHeader } from "./header.js";

const session = await requireStage("active");
renderHeader(session);
byId("new-case").hidden = session.user.role !== "neutral";
byId("main").hidden = false;

try {
  const { cases } = await api("GET", "/api/cases");
  if (cases.length === 0) {
    byId("empty").hidden = false;
  } else {
    const rows = cases.map((item) =>
      el(
        "tr",
        { dataset: { testid: "case-row", caseId: item.id } },
        el("td", {}, el("a", { href: `/cases/${encodeURIComponent(item.id)}` }, item.title)),
        el("td", {}, processName(item.process)),
        el("td", {}, humanize(item.status)),
        el("td", {}, roleName(item.my_role)),
      ),
    );
    byId("case-rows").replaceChildren(...rows);
    byId("case-table").hidden = false;
  }
} catch (error) {
  showError(byId("page-error"), error);
}
