// /account/email/confirm/{token}: the new address confirms it receives mail (one click, so a
// mail scanner that opens links changes nothing).

import { api } from "./api.js";
import { byId } from "./dom.js";
import { submitting } from "./feedback.js";

const token = decodeURIComponent(window.location.pathname.split("/").pop() || "");
const form = byId("confirm-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await submitting(form, byId("form-error"), () =>
    api("POST", `/api/account/email/confirm/${encodeURIComponent(token)}`),
  );
  if (answer) {
    byId("done").textContent = `Mail from Caucus now goes to ${answer.email}.`;
    byId("done").hidden = false;
    form.hidden = true;
  }
});
