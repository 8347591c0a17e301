// /respond/{token}: the personal page of one person named in a request, opened from their mail:
// consent to a disclosure, then accept one of the proposed times, decline, or propose others.

import { api } from "./api.js";
import { byId, el, humanize, requestStatusName } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { SlotSelection, describeSelection, renderSlots as renderSlotPicker } from "./slot-picker.js";
import { browserZone, formatInstant, formatSpan, nowEpoch, zoneLabel } from "./zoned-time.js";

const token = decodeURIComponent(window.location.pathname.replace(/^\/respond\//, "").replace(/\/$/, ""));
const respondPath = `/api/respond/${encodeURIComponent(token)}`;
const zone = browserZone();
const selection = new SlotSelection(3);
let view = null;

const ANSWER_WORDS = { accepted: "Accepted", declined: "Declined", proposed: "Proposed other times" };
const STATUS_NOTES = {
  pending: "The neutral is checking this request for conflicts of interest. You will get a mail when it is your turn.",
  disclosed: "The neutral has made a disclosure; everyone named must consent before dates are agreed.",
  declined: "The neutral cannot take this matter. Nothing more is needed from you.",
  converted: "The time is agreed and the case is open. Look for your invitation mail to join it.",
};

function roleWord(role) {
  return role === "attorney" ? "an attorney" : "a party";
}

function render(answer) {
  view = answer;
  document.title = `${answer.title} · Caucus`;
  byId("request-title").textContent = answer.title;
  byId("request-reference").textContent = answer.reference;
  byId("request-status").textContent = requestStatusName(answer.status);
  byId("neutral-name").textContent = answer.neutral.name;
  byId("my-role").textContent = roleWord(answer.me.role);
  byId("my-name").textContent = answer.me.name;

  const note = STATUS_NOTES[answer.status];
  const mustConsent = Boolean(answer.disclosure) && answer.me.consent !== "given";
  byId("status-note").hidden = !note || (answer.status === "disclosed" && mustConsent);
  byId("status-note").textContent = note && answer.status === "disclosed" && !mustConsent
    ? "Thank you for your consent. Dates are agreed once everyone has consented."
    : note || "";

  byId("disclosure-section").hidden = !mustConsent || answer.status === "declined" || answer.status === "converted";
  byId("disclosure").textContent = answer.disclosure || "";
  byId("consent-refused").hidden = answer.me.consent !== "refused";

  const slots = answer.slots || [];
  const answering = answer.status === "scheduling" && !mustConsent;
  byId("answer-section").hidden = !answering;
  if (answering) {
    renderCurrentSlots(slots);
  }

  byId("people").replaceChildren(
    ...(answer.people || []).map((person) =>
      el(
        "li",
        { dataset: { testid: "person" } },
        el("span", { class: "member-name" }, person.name),
        el("span", { class: "tag" }, humanize(person.role)),
        el("span", { class: "hint", dataset: { testid: "person-answer" } }, ANSWER_WORDS[person.answer] || "No answer yet"),
      ),
    ),
  );
}

function renderCurrentSlots(slots) {
  const me = view.me;
  const mine = slots.find((slot) => slot.id === me.answer_slot);
  let said = "You have not answered yet.";
  if (me.answer === "accepted" && mine) {
    said = `You accepted ${formatSpan(mine.starts_at, mine.minutes, zone)}.`;
  } else if (me.answer === "declined") {
    said = "You declined these times.";
  } else if (me.answer === "proposed") {
    said = "You proposed other times; the neutral will offer new ones.";
  }
  byId("my-answer").textContent = said;
  byId("viewer-zone").textContent = zoneLabel(zone);
  const other = view.neutral.time_zone;
  byId("current-slots").replaceChildren(
    ...slots.map((slot) => {
      const accepted = me.answer === "accepted" && me.answer_slot === slot.id;
      const button = el(
        "button",
        { type: "button", class: accepted ? "" : "primary", dataset: { testid: "accept-slot", startsAt: String(slot.starts_at) }, disabled: accepted },
        accepted ? "Accepted" : "Accept this time",
      );
      button.addEventListener("click", () => act(button, { answer: "accept", slot_id: slot.id }));
      return el(
        "li",
        { dataset: { testid: "current-slot", startsAt: String(slot.starts_at) } },
        el("span", { class: "member-name" }, formatSpan(slot.starts_at, slot.minutes, zone)),
        other && other !== zone ? el("span", { class: "hint" }, `${formatInstant(slot.starts_at, other)} ${zoneLabel(other)}`) : null,
        slot.proposed_by_name ? el("span", { class: "hint" }, `proposed by ${slot.proposed_by_name}`) : null,
        button,
      );
    }),
  );
  if (slots.length === 0) {
    byId("current-slots").replaceChildren(el("li", { class: "empty" }, "No times are proposed at the moment."));
  }
}

async function act(button, body, path = "/answer") {
  const region = byId("action-error");
  clearError(region);
  button.disabled = true;
  try {
    render(await api("POST", respondPath + path, body));
  } catch (error) {
    showError(region, error);
  } finally {
    button.disabled = false;
  }
}

byId("consent-yes").addEventListener("click", (event) => act(event.currentTarget, { consent: true }, "/consent"));
byId("consent-no").addEventListener("click", (event) => act(event.currentTarget, { consent: false }, "/consent"));
byId("decline").addEventListener("click", (event) => act(event.currentTarget, { answer: "decline" }));

selection.watch("status", () => {
  byId("propose-choice").textContent = describeSelection(selection, zone);
});

byId("propose-open").addEventListener("click", async () => {
  const form = byId("propose-form");
  form.hidden = false;
  const container = byId("propose-slots");
  container.replaceChildren(el("p", { class: "hint" }, "Loading open times…"));
  try {
    const answer = await api("GET", `${respondPath}/slots?from=${nowEpoch()}&days=14`);
    selection.keepOnly(answer.slots || []);
    const otherZone = answer.time_zone || view.neutral.time_zone;
    renderSlotPicker(container, answer.slots || [], selection, { zone, otherZone, testid: "propose-slot" });
    byId("propose-choice").textContent = describeSelection(selection, zone);
  } catch (error) {
    showError(byId("propose-error"), error);
  }
});

byId("propose-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = byId("propose-form");
  const region = byId("propose-error");
  const chosen = selection.values();
  if (chosen.length === 0) {
    showError(region, new Error("Choose at least one time that suits you."));
    return;
  }
  const answer = await submitting(form, region, () => api("POST", `${respondPath}/answer`, { answer: "propose", starts_at: chosen }));
  if (answer) {
    selection.clear();
    form.hidden = true;
    render(answer);
  }
});

try {
  render(await api("GET", respondPath));
  byId("content").hidden = false;
} catch (error) {
  showError(byId("page-error"), error);
} finally {
  byId("loading").hidden = true;
}
