// /neutral/requests/{request_id}: one request as its neutral works it: the intake, the people and
// their answers, the conflict check and its decision, the times on offer and the confirmation
// that opens the case.

import { api, requireStage } from "./api.js";
import { byId, el, formatDate, humanize, processName, requestStatusName } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";
import { SlotSelection, describeSelection, renderSlots } from "./slot-picker.js";
import { browserZone, formatInstant, formatSpan, nowEpoch, zoneLabel } from "./zoned-time.js";

const requestId = decodeURIComponent(window.location.pathname.replace(/^\/neutral\/requests\//, "").replace(/\/$/, ""));
const requestPath = `/api/neutral/requests/${encodeURIComponent(requestId)}`;
const zone = browserZone();
const selection = new SlotSelection(3);
let current = null;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

const CONSENT_WORDS = { given: "Given", refused: "Refused" };
const ANSWER_WORDS = { accepted: "Accepted", declined: "Declined", proposed: "Proposed other times" };

function detail(term, ...description) {
  const items = description.filter((item) => item !== null && item !== undefined && item !== "");
  return items.length ? [el("dt", {}, term), el("dd", {}, ...items)] : [];
}

function personName(id) {
  const person = (current.people || []).find((candidate) => String(candidate.id) === String(id));
  return person ? person.name : null;
}

function slotAt(id) {
  return (current.slots || []).find((slot) => String(slot.id) === String(id)) || null;
}

function renderIntake(request) {
  const intake = request.intake || {};
  byId("intake").replaceChildren(
    ...detail("Process", processName(intake.process)),
    ...detail("Case type", intake.case_type),
    ...detail("Description", intake.description ? el("p", { class: "prose" }, intake.description) : null),
    ...detail(
      "Court",
      intake.filed_in_court ? [intake.cause_number, intake.jurisdiction].filter(Boolean).join(", ") || "Filed in court" : "Not filed in court",
    ),
    ...detail("Session length", request.minutes ? `${request.minutes} minutes` : null),
    ...detail("Requester’s time zone", zoneLabel(request.time_zone)),
  );
}

function renderPeople(request) {
  byId("people-rows").replaceChildren(
    ...(request.people || []).map((person) => {
      const represents = person.represents ? personName(person.represents) : null;
      const role = person.role === "attorney" ? `Attorney${represents ? ` for ${represents}` : ""}` : `Party (${humanize(person.side)})`;
      const slot = person.answer_slot ? slotAt(person.answer_slot) : null;
      let answer = ANSWER_WORDS[person.answer] || "No answer yet";
      if (person.answer === "accepted" && slot) {
        answer += `: ${formatInstant(slot.starts_at, zone)}`;
      }
      return el(
        "tr",
        { dataset: { testid: "person-row" } },
        el(
          "td",
          {},
          el("span", { class: "member-name" }, person.name),
          person.organisation ? el("span", { class: "hint" }, ` ${person.organisation}`) : null,
          person.is_requester ? el("span", { class: "tag" }, "Requester") : null,
        ),
        el("td", {}, role),
        el("td", {}, person.email || ""),
        el("td", { dataset: { testid: "person-consent" } }, CONSENT_WORDS[person.consent] || (request.disclosure ? "Not yet" : "Not asked")),
        el("td", { dataset: { testid: "person-answer" } }, answer),
      );
    }),
  );
}

function renderConflicts(request) {
  const hits = request.hits || [];
  byId("no-hits").hidden = hits.length > 0;
  byId("hits-table").hidden = hits.length === 0;
  byId("hit-rows").replaceChildren(
    ...hits.map((hit) =>
      el(
        "tr",
        { dataset: { testid: "hit-row" } },
        el("td", { dataset: { testid: "hit-name" } }, hit.name),
        el("td", { dataset: { testid: "hit-matched" } }, hit.matched),
        el("td", {}, humanize(hit.role || hit.field)),
        el("td", {}, hit.title || hit.reference || "", hit.date ? el("span", { class: "hint" }, ` ${formatDate(hit.date)}`) : null),
        el("td", {}, humanize(hit.kind)),
        // the score is a similarity from 0 to 100
        el("td", {}, typeof hit.score === "number" ? `${Math.round(hit.score)} %` : String(hit.score ?? "")),
      ),
    ),
  );
  byId("decisions").replaceChildren(
    ...(request.decisions || []).map((decision) =>
      el(
        "li",
        { dataset: { testid: "decision" } },
        el("strong", {}, humanize(decision.decision)),
        ` ${formatDate(decision.decided_at, { withTime: true })}`,
        decision.note ? el("p", { class: "prose hint" }, decision.note) : null,
      ),
    ),
  );
  byId("decision-form").hidden = !["pending", "disclosed"].includes(request.status);
}

function renderDates(request) {
  byId("viewer-zone").textContent = zoneLabel(zone);
  byId("requester-zone").textContent = zoneLabel(request.time_zone);
  const slots = request.slots || [];
  const other = request.time_zone && request.time_zone !== zone ? request.time_zone : null;
  byId("no-slots").hidden = slots.length > 0;
  byId("slots-table").hidden = slots.length === 0;
  byId("slot-rows").replaceChildren(
    ...slots.map((slot) => {
      const accepted = (slot.accepted_by || []).map((id) => personName(id) || "?");
      return el(
        "tr",
        { dataset: { testid: "slot-row", startsAt: String(slot.starts_at), current: String(Boolean(slot.current)) } },
        el(
          "td",
          {},
          formatSpan(slot.starts_at, slot.minutes, zone),
          other ? el("span", { class: "hint" }, ` · ${formatInstant(slot.starts_at, other)} ${zoneLabel(other)}`) : null,
        ),
        el("td", {}, slot.proposed_by_name || humanize(slot.proposed_by)),
        el("td", { dataset: { testid: "slot-accepted-by" } }, accepted.length ? accepted.join(", ") : "Nobody yet"),
        el("td", {}, slot.current ? "On offer" : "Earlier"),
      );
    }),
  );
  const confirmable = request.can_confirm ? slotAt(request.can_confirm) : null;
  byId("confirm-box").hidden = confirmable === null || request.status !== "scheduling";
  if (confirmable !== null) {
    byId("confirm-time").textContent = formatSpan(confirmable.starts_at, confirmable.minutes, zone);
  }
  byId("propose-open").hidden = request.status !== "scheduling";
  if (request.status !== "scheduling") {
    byId("propose-form").hidden = true;
  }
}

function render(request) {
  current = request;
  const intake = request.intake || {};
  document.title = `${request.reference} · Caucus`;
  byId("request-title").textContent = intake.title || request.reference;
  byId("request-reference").textContent = request.reference;
  byId("request-status").textContent = requestStatusName(request.status);
  renderIntake(request);
  renderPeople(request);
  renderConflicts(request);
  renderDates(request);
  byId("case-opened").hidden = !request.case_id;
  if (request.case_id) {
    byId("case-link").href = `/cases/${encodeURIComponent(request.case_id)}`;
  }
  byId("request-content").hidden = false;
}

for (const button of byId("decision-form").querySelectorAll("button[data-decision]")) {
  button.addEventListener("click", async () => {
    const form = byId("decision-form");
    const region = byId("decision-error");
    const decision = button.dataset.decision;
    const note = byId("decision-note").value.trim();
    if (decision === "disclose" && !note) {
      showError(region, new Error("Write the disclosure every person will read before they consent."));
      byId("decision-note").focus();
      return;
    }
    const answer = await submitting(form, region, () => api("POST", `${requestPath}/decision`, { decision, note }));
    if (answer) {
      byId("decision-note").value = "";
      render(answer.request);
    }
  });
}

byId("confirm-slot").addEventListener("click", async () => {
  const button = byId("confirm-slot");
  const region = byId("action-error");
  clearError(region);
  button.disabled = true;
  try {
    const answer = await api("POST", `${requestPath}/confirm`, { slot_id: current.can_confirm });
    render({ ...answer.request, case_id: answer.case_id || answer.request.case_id });
    byId("case-link").focus();
  } catch (error) {
    showError(region, error);
  } finally {
    button.disabled = false;
  }
});

selection.watch("status", () => {
  byId("propose-choice").textContent = describeSelection(selection, zone);
});

/** Who proposed `epoch` among the slots of the request, for a hint in the picker. */
function proposedNote(epoch) {
  const names = (current.slots || [])
    .filter((slot) => slot.starts_at === epoch && slot.proposed_by !== "neutral")
    .map((slot) => slot.proposed_by_name)
    .filter(Boolean);
  return names.length ? `proposed by ${[...new Set(names)].join(", ")}` : null;
}

byId("propose-open").addEventListener("click", async () => {
  byId("propose-form").hidden = false;
  const container = byId("propose-slots");
  container.replaceChildren(el("p", { class: "hint" }, "Loading open times…"));
  try {
    const minutes = encodeURIComponent(current.minutes || 60);
    // `request` counts this request's own held times as open: they may be offered again.
    const query = `minutes=${minutes}&from=${nowEpoch()}&days=14&request=${encodeURIComponent(requestId)}`;
    const answer = await api("GET", `/api/neutral/slots?${query}`);
    selection.keepOnly(answer.slots || []);
    renderSlots(container, answer.slots || [], selection, {
      zone,
      otherZone: current.time_zone,
      testid: "propose-slot",
      note: proposedNote,
    });
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
    showError(region, new Error("Choose at least one time."));
    return;
  }
  const answer = await submitting(form, region, () => api("POST", `${requestPath}/proposals`, { starts_at: chosen }));
  if (answer) {
    selection.clear();
    form.hidden = true;
    render(answer.request);
  }
});

try {
  const answer = await api("GET", requestPath);
  render(answer.request);
} catch (error) {
  showError(byId("page-error"), error);
}
