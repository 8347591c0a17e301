// /cases/{case_id}/close: the case's neutral closes it, confirming with its title.

import { api, requireStage } from "./api.js";
import { byId, el } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";

const caseId = decodeURIComponent(window.location.pathname.split("/")[2] || "");
const casePath = `/api/cases/${encodeURIComponent(caseId)}`;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;
byId("case-link").href = `/cases/${encodeURIComponent(caseId)}`;

const form = byId("close-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const confirmTitle = byId("confirm-title").value;
  if (!confirmTitle.trim()) {
    showError(byId("close-error"), new Error("Type the case title to confirm."));
    return;
  }
  const answer = await submitting(form, byId("close-error"), () =>
    api("POST", `${casePath}/close`, { confirm_title: confirmTitle }),
  );
  if (answer) {
    byId("close-section").hidden = true;
    byId("closed").hidden = false;
    // The case is gone: the crumb names it without linking to it.
    const crumb = byId("case-link");
    crumb.replaceWith(el("span", { id: "case-link", dataset: { testid: "case-crumb" } }, crumb.textContent));
  }
});

try {
  const answer = await api("GET", casePath);
  byId("case-link").textContent = answer.case.title;
  byId("case-title").textContent = answer.case.title;
  if (answer.my_role !== "neutral") {
    showError(byId("page-error"), new Error("Only the case's neutral can close it."));
  } else {
    byId("close-section").hidden = false;
  }
} catch (error) {
  showError(byId("page-error"), error);
}
