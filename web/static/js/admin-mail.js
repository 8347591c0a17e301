// /admin/mail: the outbox: what waits, what failed (with the server's answer), retry one, a test mail.

import { api, requireStage } from "./api.js";
import { byId, el, formatDate } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

function retryButton(mail) {
  const button = el("button", { type: "button", class: "quiet", dataset: { testid: "mail-retry" } }, "Retry");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("POST", `/api/admin/mail/${encodeURIComponent(mail.id)}/retry`);
      await load();
    } catch (error) {
      showError(byId("page-error"), error);
      button.disabled = false;
    }
  });
  return button;
}

async function load() {
  const answer = await api("GET", "/api/admin/mail");
  byId("transport").textContent = answer.transport;
  const { queued, sent, failed } = answer.counts;
  byId("counts").textContent = `${sent} sent, ${queued} waiting, ${failed} failed.`;
  byId("no-failed").hidden = answer.failed.length > 0;
  byId("failed-rows").replaceChildren(
    ...answer.failed.map((mail) =>
      el(
        "tr",
        { dataset: { testid: "mail-row" } },
        el("td", {}, mail.kind),
        el("td", {}, mail.recipient),
        el("td", {}, formatDate(mail.created_at, { withTime: true })),
        el("td", {}, mail.last_error || ""),
        el("td", {}, retryButton(mail)),
      ),
    ),
  );
  byId("no-queued").hidden = answer.queued.length > 0;
  byId("queued-rows").replaceChildren(
    ...answer.queued.map((mail) =>
      el(
        "tr",
        { dataset: { testid: "mail-row" } },
        el("td", {}, mail.kind),
        el("td", {}, mail.recipient),
        el("td", {}, String(mail.attempts)),
        el("td", {}, formatDate(mail.next_attempt_at, { withTime: true })),
        el("td", {}, mail.last_error || ""),
      ),
    ),
  );
}

if (session.user.role !== "admin") {
  showError(byId("page-error"), new Error("Only administrators can see the mail queue."));
} else {
  try {
    await load();
    byId("mail-content").hidden = false;
  } catch (error) {
    showError(byId("page-error"), error);
  }
}

const form = byId("test-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const to = byId("test-to").value.trim();
  const answer = await submitting(form, byId("test-error"), () => api("POST", "/api/admin/mail/test", { to }));
  if (answer) {
    form.reset();
    await load();
  }
});
