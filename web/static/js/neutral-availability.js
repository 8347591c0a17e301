// /neutral/availability: a neutral's public request link and the hours it offers: weekly
// windows in their own time zone, days off, session lengths, breaks, notice and horizon.

import { api, requireStage } from "./api.js";
import { byId, el } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { clearFields, markField } from "./field-errors.js";
import { renderHeader } from "./header.js";
import { browserZone, fillZoneSelect } from "./zoned-time.js";

const DAYS = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];
const WORKING_WEEK = Object.fromEntries(DAYS.map(([day]) => [day, ["sat", "sun"].includes(day) ? [] : [["09:00", "17:00"]]]));
const TIME = /^([01]\d|2[0-3]):[0-5]\d$/;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

const form = byId("availability-form");
let rowCount = 0;

function rowField(labelText, control, key) {
  rowCount += 1;
  control.id = `${key}-${rowCount}`;
  return el("div", { class: "field" }, el("label", { for: control.id }, labelText), control);
}

function removeButton(row, what) {
  const button = el("button", { type: "button", class: "quiet remove", dataset: { testid: "remove-row" } }, "Remove");
  button.setAttribute("aria-label", `Remove this ${what}`);
  button.addEventListener("click", () => row.remove());
  return button;
}

function addWindow(day, from = "09:00", to = "17:00") {
  const start = el("input", { type: "time", value: from, step: 300, dataset: { part: "from" } });
  const end = el("input", { type: "time", value: to, step: 300, dataset: { part: "to" } });
  const row = el("div", { class: "row", dataset: { testid: "window-row" } });
  row.append(rowField("From", start, `${day}-from`), rowField("To", end, `${day}-to`), removeButton(row, "window"));
  byId(`windows-${day}`).append(row);
  return start;
}

function renderWeek(weekly) {
  byId("weekly").replaceChildren(
    ...DAYS.map(([day, name]) => {
      const add = el("button", { type: "button", class: "quiet", dataset: { testid: "add-window" } }, "Add hours");
      add.setAttribute("aria-label", `Add hours on ${name}`);
      add.addEventListener("click", () => addWindow(day).focus());
      return el(
        "div",
        { class: "weekday", role: "group", "aria-labelledby": `day-${day}`, dataset: { testid: `day-${day}` } },
        el("h3", { id: `day-${day}` }, name),
        el("div", { id: `windows-${day}`, class: "rows" }),
        add,
      );
    }),
  );
  for (const [day] of DAYS) {
    for (const [from, to] of weekly[day] || []) {
      addWindow(day, from, to);
    }
  }
}

function addBlocked(value = "") {
  const input = el("input", { type: "date", value, dataset: { part: "day" } });
  const row = el("div", { class: "row", dataset: { testid: "blocked-row" } });
  row.append(rowField("Day off", input, "blocked"), removeButton(row, "day off"));
  byId("blocked-rows").append(row);
  return input;
}

function showLink(profile) {
  byId("link-section").hidden = !profile.link;
  if (profile.link) {
    byId("public-link").textContent = new URL(profile.link, window.location.origin).href;
  }
  byId("not-accepting").hidden = Boolean(profile.accepting);
}

function fill(profile) {
  const availability = profile.availability || {};
  byId("handle").value = profile.handle || "";
  byId("accepting").checked = profile.accepting !== false;
  fillZoneSelect(byId("time-zone"), availability.time_zone || browserZone());
  renderWeek(availability.weekly || WORKING_WEEK);
  byId("blocked-rows").replaceChildren();
  for (const day of availability.blocked_days || []) {
    addBlocked(day);
  }
  byId("lengths").value = (availability.lengths || [60, 120]).join(", ");
  byId("buffer").value = availability.buffer_minutes ?? 15;
  byId("step").value = String(availability.step_minutes ?? 30);
  byId("notice").value = availability.notice_hours ?? 24;
  byId("horizon").value = availability.horizon_days ?? 60;
  showLink(profile);
}

/** The profile as PUT takes it; marks what is wrong and answers null. */
function readProfile() {
  let ok = true;
  const bad = (input, message) => {
    markField(input, message);
    ok = false;
  };
  const handle = byId("handle").value.trim().toLowerCase();
  if (!/^[a-z0-9-]{1,40}$/.test(handle)) {
    bad(byId("handle"), "Use up to 40 lower-case letters, digits and hyphens.");
  }
  const weekly = {};
  for (const [day, name] of DAYS) {
    weekly[day] = [];
    for (const row of byId(`windows-${day}`).querySelectorAll("[data-testid=window-row]")) {
      const from = row.querySelector("[data-part=from]");
      const to = row.querySelector("[data-part=to]");
      if (!TIME.test(from.value) || !TIME.test(to.value)) {
        bad(from, `Give both times of these hours on ${name}.`);
      } else if (from.value >= to.value) {
        bad(to, "The end must come after the start.");
      } else {
        weekly[day].push([from.value, to.value]);
      }
    }
  }
  const blocked = [...byId("blocked-rows").querySelectorAll("input[data-part=day]")]
    .map((input) => input.value)
    .filter(Boolean);
  const lengths = byId("lengths")
    .value.split(/[\s,;]+/)
    .filter(Boolean)
    .map(Number);
  if (lengths.length === 0 || lengths.some((minutes) => !Number.isInteger(minutes) || minutes < 15 || minutes > 720)) {
    bad(byId("lengths"), "Give one or more lengths in whole minutes, from 15 to 720.");
  }
  const whole = (id, min, max, message) => {
    const value = Number(byId(id).value);
    if (byId(id).value.trim() === "" || !Number.isInteger(value) || value < min || value > max) {
      bad(byId(id), message);
    }
    return value;
  };
  const availability = {
    time_zone: byId("time-zone").value,
    weekly,
    blocked_days: [...new Set(blocked)].sort(),
    lengths: [...new Set(lengths)].sort((a, b) => a - b),
    buffer_minutes: whole("buffer", 0, 240, "From 0 to 240 minutes."),
    step_minutes: Number(byId("step").value),
    notice_hours: whole("notice", 0, 720, "From 0 to 720 hours."),
    horizon_days: whole("horizon", 1, 365, "From 1 to 365 days."),
  };
  return ok ? { handle, accepting: byId("accepting").checked, availability } : null;
}

byId("add-blocked").addEventListener("click", () => addBlocked().focus());

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("form-error");
  byId("saved").hidden = true;
  clearFields(form);
  const body = readProfile();
  if (body === null) {
    showError(region, new Error("Some fields need your attention; they are marked below each one."));
    return;
  }
  const answer = await submitting(form, region, () => api("PUT", "/api/neutral/profile", body));
  if (answer) {
    showLink(answer.profile);
    byId("saved").hidden = false;
  }
});

byId("copy-public-link").addEventListener("click", async () => {
  const button = byId("copy-public-link");
  try {
    await navigator.clipboard.writeText(byId("public-link").textContent);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select the link and copy it";
  }
});

if (session.user.role !== "neutral") {
  showError(byId("page-error"), new Error("Only neutrals offer request links."));
} else {
  try {
    const { profile } = await api("GET", "/api/neutral/profile");
    fill(profile);
    form.hidden = false;
  } catch (error) {
    showError(byId("page-error"), error);
  }
}
