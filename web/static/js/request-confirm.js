// /request/confirm/{token}: the requester confirms their address from the mailed link, which
// hands the request to the neutral. A button, not the page load, confirms: mail scanners that
// open links must not confirm for the requester.

import { api } from "./api.js";
import { byId } from "./dom.js";
import { clearError, showError } from "./feedback.js";

const token = decodeURIComponent(window.location.pathname.replace(/^\/request\/confirm\//, "").replace(/\/$/, ""));
const button = byId("confirm-address");

button.addEventListener("click", async () => {
  const region = byId("page-error");
  clearError(region);
  button.disabled = true;
  try {
    const answer = await api("POST", `/api/request-confirmations/${encodeURIComponent(token)}`);
    byId("request-reference").textContent = answer.reference;
    byId("confirm-step").hidden = true;
    byId("confirmed").hidden = false;
  } catch (error) {
    showError(region, error);
    // An unknown, expired or used link stays so; anything else is worth another click.
    const final = [404, 409, 410].includes(error.status);
    button.disabled = final;
    byId("confirm-step").hidden = final;
  }
});
