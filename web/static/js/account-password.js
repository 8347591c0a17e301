// /account/password: replace the one-time password (forced) or change it later.

import { api, continueFromStage, getSession, requireStage } from "./api.js";
import { byId } from "./dom.js";
import { submitting } from "./feedback.js";
import { renderHeader } from "./header.js";
import { showPasswordRules } from "./password-rules.js";

showPasswordRules();

const form = byId("password-form");
const errorRegion = byId("form-error");

const session = await requireStage("password_change_required", "active");
renderHeader(session);
byId("forced-notice").hidden = session.stage !== "password_change_required";
byId("main").hidden = false;
byId("current-password").focus();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const current = byId("current-password").value;
  const fresh = byId("new-password").value;
  const confirm = byId("confirm-password").value;
  if (!current || !fresh) {
    errorRegion.textContent = "Enter your current password and a new one.";
    errorRegion.hidden = false;
    return;
  }
  if (fresh !== confirm) {
    errorRegion.textContent = "The new password and its confirmation do not match.";
    errorRegion.hidden = false;
    byId("confirm-password").focus();
    return;
  }
  const answer = await submitting(form, errorRegion, () =>
    api("POST", "/api/account/password", { current_password: current, new_password: fresh }),
  );
  if (!answer) {
    return;
  }
  const refreshed = await getSession({ refresh: true });
  if (session.stage === "password_change_required") {
    continueFromStage(answer.stage || refreshed.stage);
    return;
  }
  form.reset();
  const status = byId("form-status");
  status.textContent = "Your password has been changed.";
  status.hidden = false;
});
