// /request/{handle}: anyone asks a neutral for a session: the matter, the people in it, and up to
// three open times. Nothing reaches the neutral before the requester confirms their address.

import { api } from "./api.js";
import { byId, el, processName } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { clearFields, markField, pathsInMessage } from "./field-errors.js";
import { SlotSelection, describeSelection, renderSlots } from "./slot-picker.js";
import { browserZone, fillZoneSelect, nowEpoch, zoneLabel } from "./zoned-time.js";

const handle = decodeURIComponent(window.location.pathname.replace(/^\/request\//, "").replace(/\/$/, ""));
const linkPath = `/api/request-links/${encodeURIComponent(handle)}`;
const DAYS = 14;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

const form = byId("request-form");
const selection = new SlotSelection(3);
let neutral = null;
let slotsLoad = 0;

// --- people -----------------------------------------------------------------------------

let rowCount = 0;

function rowField(labelText, control, key) {
  rowCount += 1;
  control.id = `${key}-${rowCount}`;
  return el("div", { class: "field" }, el("label", { for: control.id }, labelText), control);
}

function textInput(part, type = "text") {
  return el("input", { type, maxlength: type === "email" ? 254 : 200, autocomplete: "off", dataset: { part } });
}

function removeButton(row, what) {
  const button = el("button", { type: "button", class: "quiet remove", dataset: { testid: "remove-row" } }, "Remove");
  button.setAttribute("aria-label", `Remove this ${what}`);
  button.addEventListener("click", () => {
    row.remove();
    refreshRepresentedOptions();
  });
  return button;
}

function addParty(side = "claimant") {
  rowCount += 1;
  const key = `p${rowCount}`;
  const name = textInput("name");
  name.addEventListener("input", refreshRepresentedOptions);
  const sideSelect = el(
    "select",
    { dataset: { part: "side" } },
    el("option", { value: "claimant" }, "Claimant"),
    el("option", { value: "respondent" }, "Respondent"),
    el("option", { value: "other" }, "Other"),
  );
  sideSelect.value = side;
  const row = el("div", { class: "row", dataset: { testid: "party-row", key } });
  row.append(
    rowField("Name", name, "party-name"),
    rowField("Email", textInput("email", "email"), "party-email"),
    rowField("Organisation", textInput("organisation"), "party-organisation"),
    rowField("Side", sideSelect, "party-side"),
    removeButton(row, "party"),
  );
  byId("party-rows").append(row);
  refreshRepresentedOptions();
  return name;
}

function addAttorney() {
  const name = textInput("name");
  const represents = el("select", { dataset: { part: "represents" } });
  const row = el("div", { class: "row", dataset: { testid: "attorney-row" } });
  row.append(
    rowField("Name", name, "attorney-name"),
    rowField("Email", textInput("email", "email"), "attorney-email"),
    rowField("Organisation or firm", textInput("organisation"), "attorney-organisation"),
    rowField("Represents", represents, "attorney-represents"),
    removeButton(row, "attorney"),
  );
  byId("attorney-rows").append(row);
  refreshRepresentedOptions();
  return name;
}

function partyRows() {
  return [...byId("party-rows").querySelectorAll("[data-testid=party-row]")];
}

/** Each attorney chooses among the party rows; a choice survives while its row does. */
function refreshRepresentedOptions() {
  const parties = partyRows().map((row, index) => ({
    key: row.dataset.key,
    name: row.querySelector("[data-part=name]").value.trim() || `Party ${index + 1}`,
  }));
  for (const select of byId("attorney-rows").querySelectorAll("select[data-part=represents]")) {
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "" }, "Choose a party"),
      ...parties.map((party) => el("option", { value: party.key }, party.name)),
    );
    select.value = parties.some((party) => party.key === chosen) ? chosen : "";
  }
}

// --- open times ---------------------------------------------------------------------------

function viewerZone() {
  return byId("time-zone").value || browserZone();
}

function showChoice() {
  byId("slot-choice").textContent = describeSelection(selection, viewerZone());
}
selection.watch("status", showChoice);

let openSlots = [];

function drawSlots() {
  renderSlots(byId("slots"), openSlots, selection, { zone: viewerZone(), otherZone: neutral.time_zone });
  showChoice();
}

async function loadSlots() {
  const load = ++slotsLoad;
  const minutes = byId("minutes").value;
  const answer = await api("GET", `${linkPath}/slots?minutes=${encodeURIComponent(minutes)}&from=${nowEpoch()}&days=${DAYS}`);
  if (load !== slotsLoad) {
    return;
  }
  openSlots = answer.slots || [];
  if (answer.time_zone) {
    neutral.time_zone = answer.time_zone;
    byId("neutral-zone").textContent = zoneLabel(answer.time_zone);
  }
  selection.keepOnly(openSlots);
  drawSlots();
}

function reloadSlots() {
  loadSlots().catch((error) => showError(byId("form-error"), error));
}

// --- the form -------------------------------------------------------------------------------

/** The request as the API takes it; marks the fields that are missing and answers null. */
function readRequest() {
  const problems = [];
  const need = (input, ok, message) => {
    if (!ok) {
      markField(input, message);
      problems.push(input);
    }
  };
  const value = (id) => byId(id).value.trim();
  need(byId("title"), value("title") !== "", "Give the matter a short name.");

  const filed = byId("filed-in-court").checked;
  if (filed) {
    need(byId("cause-number"), value("cause-number") !== "", "A case filed in court needs its cause number.");
    need(byId("jurisdiction"), value("jurisdiction") !== "", "A case filed in court needs its court and jurisdiction.");
  }

  const parties = [];
  const indexOfRow = new Map();
  for (const row of partyRows()) {
    const part = (name) => row.querySelector(`[data-part=${name}]`);
    const name = part("name").value.trim();
    const email = part("email").value.trim();
    const organisation = part("organisation").value.trim();
    if (!name && !email && !organisation) {
      continue;
    }
    need(part("name"), name !== "", "Name this party.");
    need(part("email"), EMAIL.test(email), "Each party needs an email address for their personal link.");
    indexOfRow.set(row.dataset.key, parties.length);
    parties.push({ name, email, organisation, side: part("side").value });
  }
  if (parties.length === 0) {
    const first = partyRows()[0] ? partyRows()[0].querySelector("[data-part=name]") : null;
    if (first !== null) {
      need(first, false, "Name at least one party.");
    }
  }

  const attorneys = [];
  for (const row of byId("attorney-rows").querySelectorAll("[data-testid=attorney-row]")) {
    const part = (name) => row.querySelector(`[data-part=${name}]`);
    const name = part("name").value.trim();
    const email = part("email").value.trim();
    if (!name && !email) {
      continue;
    }
    need(part("name"), name !== "", "Name this attorney.");
    need(part("email"), EMAIL.test(email), "Each attorney needs an email address for their personal link.");
    const represents = indexOfRow.get(part("represents").value);
    need(part("represents"), represents !== undefined, "Choose the party this attorney represents.");
    attorneys.push({ name, email, organisation: part("organisation").value.trim(), represents });
  }

  need(byId("requester-name"), value("requester-name") !== "", "Tell the neutral who you are.");
  need(byId("requester-email"), EMAIL.test(value("requester-email")), "Enter the address we should send the confirmation link to.");

  const slots = selection.values();
  if (slots.length === 0) {
    problems.push(byId("slots"));
    showError(byId("form-error"), new Error("Choose at least one time that suits you."));
  }
  if (problems.length) {
    if (slots.length) {
      showError(byId("form-error"), new Error("Some fields need your attention; they are marked below each one."));
    }
    const first = problems.find((node) => typeof node.focus === "function" && node.tagName !== "DIV");
    if (first) {
      first.focus();
    }
    return null;
  }
  return {
    requester: { name: value("requester-name"), email: value("requester-email"), role: byId("requester-role").value },
    process: byId("process").value,
    title: value("title"),
    case_type: value("case-type"),
    description: value("description"),
    filed_in_court: filed,
    cause_number: filed ? value("cause-number") : "",
    jurisdiction: filed ? value("jurisdiction") : "",
    parties,
    attorneys,
    minutes: Number(byId("minutes").value),
    slots,
    time_zone: viewerZone(),
    website: byId("website").value,
  };
}

/** The input a server's field path names ("parties.1.email"), or null. */
function inputForPath(path) {
  const [head, index, tail] = path.split(".");
  const direct = {
    title: "title",
    case_type: "case-type",
    description: "description",
    cause_number: "cause-number",
    jurisdiction: "jurisdiction",
    process: "process",
    minutes: "minutes",
    time_zone: "time-zone",
  };
  if (direct[head]) {
    return byId(direct[head]);
  }
  if (head === "requester" && index && ["name", "email", "role"].includes(index)) {
    return byId(`requester-${index}`);
  }
  const rows = {
    parties: byId("party-rows").querySelectorAll("[data-testid=party-row]"),
    attorneys: byId("attorney-rows").querySelectorAll("[data-testid=attorney-row]"),
  }[head];
  if (rows && /^\d+$/.test(index || "") && tail) {
    // Rows left empty were not sent: count only the filled ones.
    const filled = [...rows].filter((row) => [...row.querySelectorAll("input")].some((input) => input.value.trim()));
    const row = filled[Number(index)];
    return row ? row.querySelector(`[data-part=${tail}]`) : null;
  }
  return null;
}

function showSlotTaken(error) {
  byId("slot-taken-message").textContent = error.message;
  const next = Array.isArray(error.details.next_slots) ? error.details.next_slots : [];
  selection.clear();
  openSlots = [...new Set([...openSlots, ...next])];
  renderSlots(byId("next-slots"), next, selection, {
    zone: viewerZone(),
    otherZone: neutral.time_zone,
    testid: "next-slot",
  });
  byId("slot-taken").hidden = false;
  byId("slot-taken").scrollIntoView({ block: "nearest" });
  reloadSlots();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("form-error");
  clearError(region);
  clearFields(form);
  const body = readRequest();
  if (body === null) {
    return;
  }
  let refusal = null;
  const answer = await submitting(form, region, async () => {
    try {
      return await api("POST", `${linkPath}/requests`, body);
    } catch (error) {
      refusal = error;
      throw error;
    }
  });
  if (answer) {
    form.hidden = true;
    byId("request-sent-message").textContent = answer.message || "We sent you a mail with a link to confirm your address.";
    byId("request-sent").hidden = false;
    byId("request-sent").scrollIntoView({ block: "nearest" });
    return;
  }
  if (refusal && refusal.code === "slot_taken") {
    clearError(region);
    showSlotTaken(refusal);
    return;
  }
  if (refusal) {
    for (const [path, text] of pathsInMessage(refusal.message)) {
      const input = inputForPath(path);
      if (input !== null) {
        markField(input, text);
      }
    }
  }
});

function minutesName(minutes) {
  if (minutes % 60 === 0) {
    const hours = minutes / 60;
    return hours === 1 ? "1 hour" : `${hours} hours`;
  }
  return minutes > 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} minutes`;
}

byId("add-party").addEventListener("click", () => addParty("other").focus());
byId("add-attorney").addEventListener("click", () => addAttorney().focus());
byId("filed-in-court").addEventListener("change", () => {
  const filed = byId("filed-in-court").checked;
  byId("court-details").hidden = !filed;
  byId("cause-number").required = filed;
  byId("jurisdiction").required = filed;
});
byId("minutes").addEventListener("change", () => {
  selection.clear();
  byId("slot-taken").hidden = true;
  reloadSlots();
});
byId("time-zone").addEventListener("change", () => {
  if (neutral !== null) {
    drawSlots();
  }
});

// --- start --------------------------------------------------------------------------------

try {
  const link = await api("GET", linkPath);
  neutral = link.neutral;
  document.title = `Request a session with ${neutral.name} · Caucus`;
  byId("request-heading").textContent = `Request a session with ${neutral.name}`;
  byId("neutral-name").value = neutral.name;
  byId("neutral-name-intro").textContent = neutral.name;
  byId("neutral-zone").textContent = zoneLabel(neutral.time_zone);
  byId("process").replaceChildren(
    ...(link.processes || ["mediation"]).map((process) => el("option", { value: process }, processName(process))),
  );
  byId("minutes").replaceChildren(
    ...(link.lengths || [60]).map((minutes) => el("option", { value: String(minutes) }, minutesName(minutes))),
  );
  fillZoneSelect(byId("time-zone"), browserZone(), neutral.time_zone);
  addParty("claimant");
  addParty("respondent");
  form.hidden = false;
  await loadSlots();
} catch (error) {
  showError(byId("page-error"), error);
} finally {
  byId("loading").hidden = true;
}
