// /cases/new: the intake form a neutral fills to open a case.

import { api, requireStage } from "./api.js";
import { byId, el } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

const form = byId("intake-form");
if (session.user.role !== "neutral") {
  form.hidden = true;
  showError(byId("page-error"), new Error("Only neutrals can open cases."));
}

let rowCount = 0;

/** A labelled control inside a repeating row; ids stay unique across rows. */
function rowField(labelText, control, key) {
  rowCount += 1;
  control.id = `${key}-${rowCount}`;
  return el("div", { class: "field" }, el("label", { for: control.id }, labelText), control);
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

function partyNames() {
  return [...byId("party-rows").querySelectorAll("input[data-part=name]")]
    .map((input) => input.value.trim())
    .filter(Boolean);
}

function addParty(side = "claimant") {
  const name = el("input", { type: "text", dataset: { part: "name" }, autocomplete: "off" });
  name.addEventListener("input", refreshRepresentedOptions);
  const sideSelect = el(
    "select",
    { dataset: { part: "side" } },
    el("option", { value: "claimant" }, "Claimant"),
    el("option", { value: "respondent" }, "Respondent"),
    el("option", { value: "other" }, "Other"),
  );
  sideSelect.value = side;
  const row = el("div", { class: "row", dataset: { testid: "party-row" } });
  row.append(rowField("Name", name, "party-name"), rowField("Side", sideSelect, "party-side"), removeButton(row, "party"));
  byId("party-rows").append(row);
  return name;
}

function addAttorney() {
  const name = el("input", { type: "text", dataset: { part: "name" }, autocomplete: "off" });
  const represents = el("select", { dataset: { part: "represents" } });
  const row = el("div", { class: "row", dataset: { testid: "attorney-row" } });
  row.append(rowField("Name", name, "attorney-name"), rowField("Represents", represents, "attorney-represents"), removeButton(row, "attorney"));
  byId("attorney-rows").append(row);
  refreshRepresentedOptions();
  return name;
}

/** Each attorney chooses among the parties named so far; a choice survives while its party does. */
function refreshRepresentedOptions() {
  const names = partyNames();
  for (const select of byId("attorney-rows").querySelectorAll("select[data-part=represents]")) {
    const chosen = select.value;
    const options = [el("option", { value: "" }, names.length ? "Choose a party" : "Name the parties first")];
    options.push(...names.map((name) => el("option", { value: name }, name)));
    select.replaceChildren(...options);
    select.value = names.includes(chosen) ? chosen : "";
  }
}

function addDate() {
  const input = el("input", { type: "date", dataset: { part: "date" } });
  const row = el("div", { class: "row", dataset: { testid: "date-row" } });
  row.append(rowField("Requested date", input, "requested-date"), removeButton(row, "date"));
  byId("date-rows").append(row);
  return input;
}

addParty("claimant");
addParty("respondent");
addDate();

byId("add-party").addEventListener("click", () => addParty("other").focus());
byId("add-attorney").addEventListener("click", () => addAttorney().focus());
byId("add-date").addEventListener("click", () => addDate().focus());

const filed = byId("filed-in-court");
filed.addEventListener("change", () => {
  byId("court-details").hidden = !filed.checked;
  byId("cause-number").required = filed.checked;
  byId("jurisdiction").required = filed.checked;
});

/** The intake as POST /api/cases expects it, or an Error naming what is missing. */
function readIntake() {
  const title = byId("title").value.trim();
  if (!title) {
    return new Error("Give the case a title.");
  }
  const parties = [...byId("party-rows").querySelectorAll("[data-testid=party-row]")]
    .map((row) => ({
      name: row.querySelector("[data-part=name]").value.trim(),
      side: row.querySelector("[data-part=side]").value,
    }))
    .filter((party) => party.name);
  const attorneys = [];
  for (const row of byId("attorney-rows").querySelectorAll("[data-testid=attorney-row]")) {
    const name = row.querySelector("[data-part=name]").value.trim();
    const represents = row.querySelector("[data-part=represents]").value;
    if (!name) {
      continue;
    }
    if (!represents) {
      return new Error(`Choose the party that ${name} represents.`);
    }
    attorneys.push({ name, represents });
  }
  const filedInCourt = filed.checked;
  const causeNumber = byId("cause-number").value.trim();
  const jurisdiction = byId("jurisdiction").value.trim();
  if (filedInCourt && (!causeNumber || !jurisdiction)) {
    return new Error("A case filed in court needs its cause number and jurisdiction.");
  }
  const requestedDates = [...byId("date-rows").querySelectorAll("input[data-part=date]")]
    .map((input) => input.value)
    .filter(Boolean);
  return {
    process: byId("process").value,
    title,
    case_type: byId("case-type").value.trim(),
    description: byId("description").value.trim(),
    parties,
    attorneys,
    filed_in_court: filedInCourt,
    cause_number: filedInCourt ? causeNumber : "",
    jurisdiction: filedInCourt ? jurisdiction : "",
    requested_dates: requestedDates,
  };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("form-error");
  const intake = readIntake();
  if (intake instanceof Error) {
    showError(region, intake);
    return;
  }
  const answer = await submitting(form, region, () => api("POST", "/api/cases", intake));
  if (answer) {
    window.location.assign(`/cases/${encodeURIComponent(answer.case.id)}`);
  }
});
