// /login/totp: the second factor, a 6-digit code or a recovery code.

import { api, continueFromStage, getSession, logout, requireStage } from "./api.js";
import { byId } from "./dom.js";
import { submitting } from "./feedback.js";

const form = byId("totp-form");
const errorRegion = byId("form-error");
const codeInput = byId("code");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const typed = codeInput.value.trim();
  const digits = typed.replace(/\s+/g, "");
  // "123 456" is a 6-digit code; anything else is sent as typed (a recovery code).
  const code = /^\d{6}$/.test(digits) ? digits : typed;
  if (!code) {
    errorRegion.textContent = "Enter the code from your authenticator app or a recovery code.";
    errorRegion.hidden = false;
    return;
  }
  const answer = await submitting(form, errorRegion, () => api("POST", "/api/login/totp", { code }));
  if (answer) {
    await getSession({ refresh: true });
    continueFromStage(answer.stage);
  } else {
    codeInput.select();
  }
});

byId("cancel").addEventListener("click", () => logout());

await requireStage("totp_required");
byId("main").hidden = false;
codeInput.focus();
