// /account/security: enrol an authenticator app (QR code, secret, first code, recovery codes) or turn it off.

import { api, getSession, requireStage } from "./api.js";
import { byId, el } from "./dom.js";
import { clearError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";

const session = await requireStage("active");
renderHeader(session);

const parts = {
  start: byId("enrol-start"),
  confirm: byId("enrol-confirm"),
  recovery: byId("recovery"),
  disable: byId("disable-form"),
};

/** Shows exactly one of the enrolment steps. */
function show(step) {
  for (const [name, node] of Object.entries(parts)) {
    node.hidden = name !== step;
  }
}

function showStatus(enabled) {
  byId("totp-status").textContent = enabled
    ? "On: signing in asks for a code from your authenticator app."
    : "Off: signing in asks only for your password.";
}

showStatus(Boolean(session.user.totp_enabled));
show(session.user.totp_enabled ? "disable" : "start");
byId("main").hidden = false;

byId("totp-begin").addEventListener("click", async () => {
  const button = byId("totp-begin");
  const region = byId("begin-error");
  clearError(region);
  button.disabled = true;
  try {
    const answer = await api("POST", "/api/account/totp/begin");
    byId("totp-qr").src = answer.qr_svg;
    byId("totp-secret").textContent = answer.secret;
    show("confirm");
    byId("confirm-code").focus();
  } catch (error) {
    region.textContent = error.message;
    region.hidden = false;
  } finally {
    button.disabled = false;
  }
});

const confirmForm = byId("confirm-form");
confirmForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("confirm-error");
  const code = byId("confirm-code").value.replace(/\s+/g, "");
  if (!/^\d{6}$/.test(code)) {
    region.textContent = "Enter the 6-digit code your authenticator app shows.";
    region.hidden = false;
    return;
  }
  const answer = await submitting(confirmForm, region, () =>
    api("POST", "/api/account/totp/confirm", { code }),
  );
  if (!answer) {
    return;
  }
  const list = byId("recovery-codes");
  list.replaceChildren(...answer.recovery_codes.map((recovery) => el("li", {}, el("code", {}, recovery))));
  confirmForm.reset();
  showStatus(true);
  show("recovery");
  await getSession({ refresh: true });
});

byId("recovery-done").addEventListener("click", () => {
  byId("recovery-codes").replaceChildren();
  show("disable");
});

const disableForm = byId("disable-form");
disableForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("disable-error");
  const password = byId("disable-password").value;
  const code = byId("disable-code").value.replace(/\s+/g, "");
  if (!password || !code) {
    region.textContent = "Enter your password and a code.";
    region.hidden = false;
    return;
  }
  const answer = await submitting(disableForm, region, () =>
    api("POST", "/api/account/totp/disable", { password, code }),
  );
  if (!answer) {
    return;
  }
  disableForm.reset();
  showStatus(false);
  show("start");
  await getSession({ refresh: true });
});

// The email address: a confirmation link goes to the new address, a notice to the old one.
byId("current-email").textContent = session.user.email || "no address yet";
const emailForm = byId("email-form");
emailForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("email-error");
  const email = byId("new-email").value.trim();
  const password = byId("email-password").value;
  if (!email || !password) {
    region.textContent = "Enter the new address and your password.";
    region.hidden = false;
    return;
  }
  const answer = await submitting(emailForm, region, () => api("POST", "/api/account/email", { email, password }));
  if (answer) {
    byId("email-pending").textContent = `We sent a confirmation link to ${answer.pending_email}. The address changes when you open it.`;
    byId("email-pending").hidden = false;
    emailForm.reset();
  }
});

// Activity digests, switched per case.
async function loadDigestChoices() {
  const region = byId("digest-error");
  try {
    const { cases } = await api("GET", "/api/account/notifications");
    byId("digest-cases").replaceChildren(
      ...cases.map((item) => {
        const box = el("input", { type: "checkbox", dataset: { testid: "digest-toggle", caseId: item.case_id } });
        box.checked = item.digests;
        box.addEventListener("change", async () => {
          box.disabled = true;
          try {
            await api("POST", "/api/account/notifications", { case_id: item.case_id, digests: box.checked });
            clearError(region);
          } catch (error) {
            box.checked = !box.checked;
            region.textContent = error.message;
            region.hidden = false;
          } finally {
            box.disabled = false;
          }
        });
        return el("li", {}, el("label", {}, box, ` ${item.title}`));
      }),
    );
  } catch (error) {
    region.textContent = error.message;
    region.hidden = false;
  }
}
loadDigestChoices();
