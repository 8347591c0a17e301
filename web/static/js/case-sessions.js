// The sessions of a case on its page: listed for every member in their own time zone; its
// neutral schedules, reschedules and cancels them.

import { api } from "./api.js";
import { byId, el, humanize } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { browserZone, epochFromLocalInput, formatSpan, localInputFromEpoch, zoneLabel } from "./zoned-time.js";

/** Fills the Sessions section of the case page; `canSchedule` shows the neutral's controls. */
export async function showSessions(caseId, { canSchedule }) {
  const sessionsPath = `/api/cases/${encodeURIComponent(caseId)}/sessions`;
  const zone = browserZone();
  const form = byId("session-form");
  const region = byId("sessions-error");
  let rescheduling = null;

  byId("sessions-zone").textContent = zoneLabel(zone);
  form.hidden = !canSchedule;

  function resetForm() {
    rescheduling = null;
    byId("session-form-heading").textContent = "Schedule a session";
    byId("session-submit").textContent = "Schedule";
    byId("session-reschedule-cancel").hidden = true;
    byId("session-start").value = "";
  }

  function controls(session) {
    if (!canSchedule || session.status !== "scheduled") {
      return [];
    }
    const move = el("button", { type: "button", class: "quiet", dataset: { testid: "session-reschedule" } }, "Reschedule");
    move.addEventListener("click", () => {
      rescheduling = session;
      byId("session-form-heading").textContent = "Reschedule the session";
      byId("session-submit").textContent = "Move the session";
      byId("session-reschedule-cancel").hidden = false;
      byId("session-start").value = localInputFromEpoch(session.starts_at);
      byId("session-minutes").value = String(session.minutes);
      byId("session-start").focus();
    });
    const cancel = el("button", { type: "button", class: "quiet", dataset: { testid: "session-cancel" } }, "Cancel");
    cancel.addEventListener("click", async () => {
      if (!window.confirm(`Cancel the session of ${formatSpan(session.starts_at, session.minutes, zone)}?`)) {
        return;
      }
      cancel.disabled = true;
      clearError(region);
      try {
        await api("POST", `${sessionsPath}/${encodeURIComponent(session.id)}/cancel`);
        await load();
      } catch (error) {
        showError(region, error);
        cancel.disabled = false;
      }
    });
    return [move, cancel];
  }

  async function load() {
    const { sessions } = await api("GET", sessionsPath);
    byId("no-sessions").hidden = sessions.length > 0;
    byId("sessions").replaceChildren(
      ...sessions.map((session) =>
        el(
          "li",
          { dataset: { testid: "session", startsAt: String(session.starts_at), status: session.status } },
          el("span", { class: session.status === "cancelled" ? "cancelled" : "member-name" }, formatSpan(session.starts_at, session.minutes, zone)),
          el("span", { class: "tag" }, humanize(session.status)),
          ...controls(session),
        ),
      ),
    );
  }

  byId("session-reschedule-cancel").addEventListener("click", resetForm);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const startsAt = epochFromLocalInput(byId("session-start").value);
    const minutes = Number(byId("session-minutes").value);
    if (startsAt === null) {
      showError(region, new Error("Choose the day and time the session starts."));
      byId("session-start").focus();
      return;
    }
    if (!Number.isInteger(minutes) || minutes < 15 || minutes > 720) {
      showError(region, new Error("A session lasts from 15 to 720 minutes."));
      byId("session-minutes").focus();
      return;
    }
    const body = { starts_at: startsAt, minutes };
    const path = rescheduling ? `${sessionsPath}/${encodeURIComponent(rescheduling.id)}/reschedule` : sessionsPath;
    const answer = await submitting(form, region, () => api("POST", path, body));
    if (answer) {
      resetForm();
      await load();
    }
  });

  try {
    await load();
  } catch (error) {
    showError(region, error);
  }
}
