// /admin/users: the account list and the form that creates an account with a one-time password.

import { api, requireStage } from "./api.js";
import { byId, el, roleName } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

// An address an admin typed is verified by a link; until then the account gets no other mail.
function emailCell(user) {
  if (!user.email) {
    return "";
  }
  if (user.email_verified) {
    return [
      user.email,
      el("span", { class: "hint", dataset: { testid: "email-verified" } }, " (verified)"),
    ];
  }
  const resend = el(
    "button",
    { type: "button", class: "quiet", dataset: { testid: "resend-verification" } },
    "Send the link again",
  );
  resend.addEventListener("click", async () => {
    resend.disabled = true;
    try {
      await api("POST", `/api/admin/users/${encodeURIComponent(user.id)}/verify-email`);
      resend.textContent = "Sent";
    } catch (error) {
      resend.disabled = false;
      showError(byId("page-error"), error);
    }
  });
  return [
    user.email,
    el("span", { class: "hint", dataset: { testid: "email-unverified" } }, " (not verified) "),
    resend,
  ];
}

async function loadUsers() {
  const { users } = await api("GET", "/api/admin/users");
  const rows = users.map((user) =>
    el(
      "tr",
      { dataset: { testid: "user-row", username: user.username } },
      el("td", {}, user.username),
      el("td", {}, user.display_name || ""),
      el("td", {}, emailCell(user)),
      el("td", {}, roleName(user.role)),
      el("td", {}, user.totp_enabled ? "On" : "Off"),
    ),
  );
  byId("user-rows").replaceChildren(...rows);
}

if (session.user.role !== "admin") {
  showError(byId("page-error"), new Error("Only administrators can manage user accounts."));
} else {
  try {
    await loadUsers();
    byId("admin-content").hidden = false;
  } catch (error) {
    showError(byId("page-error"), error);
  }
}

const form = byId("create-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("form-error");
  const username = byId("new-username").value.trim();
  const displayName = byId("new-display-name").value.trim();
  const email = byId("new-email").value.trim();
  const role = byId("new-role").value;
  if (!username) {
    showError(region, new Error("Enter a username."));
    return;
  }
  byId("created").hidden = true;
  const body = { username, role };
  if (displayName) {
    body.display_name = displayName;
  }
  if (email) {
    body.email = email;
  }
  const answer = await submitting(form, region, () => api("POST", "/api/admin/users", body));
  if (!answer) {
    return;
  }
  byId("created-username").textContent = answer.user.username;
  byId("one-time-password").textContent = answer.one_time_password;
  byId("created").hidden = false;
  form.reset();
  try {
    await loadUsers();
  } catch (error) {
    showError(region, error);
  }
});
