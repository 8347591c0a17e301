// /reset/{token}: a new password through a mailed link; a link used, expired or damaged gets
// one clear page.

import { api, continueFromStage, getSession } from "./api.js";
import { byId } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { showPasswordRules } from "./password-rules.js";

showPasswordRules();

const token = decodeURIComponent(window.location.pathname.split("/").pop() || "");
const path = `/api/password/reset/${encodeURIComponent(token)}`;
const form = byId("reset-form");
const errorRegion = byId("form-error");

function invalid(error) {
  byId("invalid-message").textContent = error.message;
  byId("invalid").hidden = false;
  form.hidden = true;
}

try {
  await api("GET", path);
  form.hidden = false;
  byId("new-password").focus();
} catch (error) {
  invalid(error);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = byId("new-password").value;
  if (!password || password !== byId("repeat-password").value) {
    showError(errorRegion, new Error("Type the same new password twice."));
    return;
  }
  let gone = null;
  const answer = await submitting(form, errorRegion, async () => {
    try {
      return await api("POST", path, { password });
    } catch (error) {
      if (error.status === 410) {
        gone = error;
      }
      throw error;
    }
  });
  if (gone) {
    invalid(gone);
  } else if (answer) {
    await getSession({ refresh: true });
    continueFromStage(answer.stage);
  }
});
