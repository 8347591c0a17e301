// /password/forgot: ask for a reset link by email. The answer is the same whether or not an
// account has the address.

import { api } from "./api.js";
import { byId } from "./dom.js";
import { showError, submitting } from "./feedback.js";

const form = byId("forgot-form");
const errorRegion = byId("form-error");
byId("email").focus();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = byId("email").value.trim();
  if (!email) {
    showError(errorRegion, new Error("Enter your email address."));
    return;
  }
  const answer = await submitting(form, errorRegion, () => api("POST", "/api/password/forgot", { email }));
  if (answer) {
    byId("sent").textContent = answer.message;
    byId("sent").hidden = false;
    form.hidden = true;
  }
});
