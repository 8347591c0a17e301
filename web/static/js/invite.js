// /invite/{token}: shows what the invitation is for, then creates the invitee's account and joins the case.

import { api, getSession } from "./api.js";
import { byId, formatDate, roleName } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { showPasswordRules } from "./password-rules.js";

showPasswordRules();

const token = decodeURIComponent(window.location.pathname.replace(/^\/invite\//, "").replace(/\/$/, ""));
const invitationPath = `/api/invitations/${encodeURIComponent(token)}`;

try {
  const invitation = await api("GET", invitationPath);
  byId("invite-case-title").textContent = invitation.case_title;
  byId("invite-role").textContent = roleName(invitation.role);
  byId("invite-display-name").textContent = invitation.display_name;
  if (invitation.expires_at) {
    byId("invite-expires").textContent = `This invitation is valid until ${formatDate(invitation.expires_at, { withTime: true })}.`;
  }
  byId("invitation").hidden = false;
  byId("username").focus();
} catch (error) {
  showError(byId("page-error"), error);
} finally {
  byId("loading").hidden = true;
}

const form = byId("accept-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("form-error");
  const username = byId("username").value.trim();
  const password = byId("password").value;
  if (!username || !password) {
    showError(region, new Error("Choose a username and a password."));
    return;
  }
  if (password !== byId("confirm-password").value) {
    showError(region, new Error("The password and its confirmation do not match."));
    byId("confirm-password").focus();
    return;
  }
  const answer = await submitting(form, region, () =>
    api("POST", `${invitationPath}/accept`, { username, password }),
  );
  if (answer) {
    await getSession({ refresh: true });
    window.location.assign(`/cases/${encodeURIComponent(answer.case_id)}`);
  }
});
