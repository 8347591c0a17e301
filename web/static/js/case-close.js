// /cases/{case_id}/close: the case's neutral closes it, confirming with its title. Sealed
// settlement agreements are listed first with who downloaded their copy; while someone has
// not, closing needs one more confirmation (the server refuses with agreements_not_downloaded).

import { api, requireStage } from "./api.js";
import { byId, el, formatDate, roleName } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";

const caseId = decodeURIComponent(window.location.pathname.split("/")[2] || "");
const casePath = `/api/cases/${encodeURIComponent(caseId)}`;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;
byId("case-link").href = `/cases/${encodeURIComponent(caseId)}`;

function signatoryItem(signatory) {
  const downloaded = signatory.downloaded
    ? `downloaded ${formatDate(signatory.downloaded_at, { withTime: true })}`
    : "has not downloaded it";
  const mailed = signatory.will_be_mailed ? `will be mailed a copy at ${signatory.email}` : "has no verified address: no copy will be mailed";
  return el(
    "li",
    { dataset: { testid: "closing-signatory", userId: signatory.user_id, downloaded: String(signatory.downloaded) } },
    el("span", { class: "member-name" }, signatory.display_name),
    " ",
    el("span", { class: "tag" }, roleName(signatory.role)),
    " ",
    el("span", { dataset: { testid: "download-state" } }, `${downloaded}; ${mailed}.`),
  );
}

function renderAgreements(answer) {
  byId("agreements-section").hidden = answer.agreements.length === 0;
  byId("closing-agreements").replaceChildren(
    ...answer.agreements.map((agreement) =>
      el(
        "li",
        { dataset: { testid: "closing-agreement", agreementId: agreement.id } },
        el(
          "p",
          {},
          el("a", { href: `/cases/${encodeURIComponent(caseId)}/spaces/${encodeURIComponent(agreement.space_id)}/agreements/${encodeURIComponent(agreement.id)}` }, `Agreement ${agreement.id}`),
          `, version ${agreement.version}, sealed ${formatDate(agreement.sealed_at, { withTime: true })}`,
        ),
        el("p", { class: "hint" }, "SHA-256 of the text: ", el("code", {}, agreement.document_sha256)),
        el("ul", { class: "plain" }, ...agreement.signatories.map(signatoryItem)),
      ),
    ),
  );
  byId("all-downloaded").hidden = !(answer.agreements.length > 0 && answer.all_downloaded);
  byId("undownloaded-field").hidden = answer.all_downloaded;
}

function showMissing(missing) {
  const list = byId("close-missing");
  list.replaceChildren(...missing.map((entry) => el("li", { dataset: { testid: "missing-signatory" } }, `${entry.display_name} (agreement ${entry.agreement_id})`)));
  list.hidden = missing.length === 0;
  byId("undownloaded-field").hidden = false;
}

const form = byId("close-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  byId("close-missing").hidden = true;
  const confirmTitle = byId("confirm-title").value;
  if (!confirmTitle.trim()) {
    showError(byId("close-error"), new Error("Type the case title to confirm."));
    return;
  }
  const answer = await submitting(form, byId("close-error"), async () => {
    try {
      return await api("POST", `${casePath}/close`, {
        confirm_title: confirmTitle,
        confirm_undownloaded_agreements: byId("confirm-undownloaded").checked,
      });
    } catch (error) {
      if (error.code === "agreements_not_downloaded") {
        showMissing(error.details.missing || []);
      }
      throw error;
    }
  });
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
    renderAgreements(await api("GET", `${casePath}/agreements/closing`));
    byId("close-section").hidden = false;
  }
} catch (error) {
  clearError(byId("close-error"));
  showError(byId("page-error"), error);
}
