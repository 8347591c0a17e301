// /cases/{case_id}: the case's details, people, sessions, fees and invoices; its neutral also invites
// parties, counsel and observers.

import { api, requireStage } from "./api.js";
import { showCalendarFeed } from "./calendar-feed.js";
import { showFees } from "./case-fees.js";
import { showSessions } from "./case-sessions.js";
import { byId, el, formatDate, humanize, processName, roleName, toDate } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";
import { io } from "/static/vendor/socket.io.esm.min.js";

const caseId = decodeURIComponent(window.location.pathname.replace(/^\/cases\//, "").replace(/\/$/, ""));
const casePath = `/api/cases/${encodeURIComponent(caseId)}`;
byId("live-link").href = `/cases/${encodeURIComponent(caseId)}/live`;
byId("spaces-link").href = `/cases/${encodeURIComponent(caseId)}/spaces`;
byId("close-link").href = `/cases/${encodeURIComponent(caseId)}/close`;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

let members = [];

function memberName(userId) {
  const member = members.find((candidate) => String(candidate.user_id) === String(userId));
  return member ? member.display_name : null;
}

function detail(term, ...description) {
  const items = description.filter((item) => item !== null && item !== undefined && item !== "");
  return items.length ? [el("dt", {}, term), el("dd", {}, ...items)] : [];
}

function list(items, render) {
  return items && items.length ? el("ul", { class: "plain" }, items.map((item) => el("li", {}, render(item)))) : null;
}

function renderCase(record) {
  // The intake as filed may sit in `record.intake`; top-level fields win where both exist.
  const intake = { ...(record.intake || {}) };
  for (const [key, value] of Object.entries(record)) {
    if (key !== "intake" && value !== undefined && value !== null) {
      intake[key] = value;
    }
  }
  record = intake;
  document.title = `${record.title} · Caucus`;
  byId("case-title").textContent = record.title;
  byId("case-process").textContent = processName(record.process);
  byId("case-status").textContent = humanize(record.status);
  const rows = [
    ...detail("Case type", record.case_type),
    ...detail("Description", record.description ? el("p", { class: "prose" }, record.description) : null),
    ...detail(
      "Parties",
      list(record.parties, (party) => `${party.name} (${humanize(party.side)})`),
    ),
    ...detail(
      "Attorneys",
      list(record.attorneys, (attorney) => `${attorney.name}, for ${attorney.represents}`),
    ),
    ...detail(
      "Court",
      record.filed_in_court
        ? [record.cause_number, record.jurisdiction].filter(Boolean).join(", ") || "Filed in court"
        : null,
    ),
    ...detail(
      "Requested dates",
      list(record.requested_dates, (date) => formatDate(date)),
    ),
  ];
  byId("case-details").replaceChildren(...rows);
}

function renderMembers() {
  const items = members.map((member) => {
    const represented = member.represents ? memberName(member.represents) || member.represents : null;
    return el(
      "li",
      { dataset: { testid: "member", role: member.role } },
      el("span", { class: "member-name" }, member.display_name),
      el("span", { class: "tag" }, roleName(member.role)),
      represented ? el("span", { class: "hint" }, `for ${represented}`) : null,
    );
  });
  byId("members").replaceChildren(...items);
  const parties = members.filter((member) => member.role === "party");
  const select = byId("invite-represents");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { value: "" }, parties.length ? "Choose a party" : "No party has joined yet"),
    ...parties.map((party) => el("option", { value: party.user_id }, party.display_name)),
  );
  select.value = parties.some((party) => String(party.user_id) === chosen) ? chosen : "";
}

function invitationActions(invitation) {
  const region = byId("invite-error");
  const act = (label, action, testid) => {
    const button = el("button", { type: "button", class: "quiet", dataset: { testid } }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("POST", `${casePath}/invitations/${encodeURIComponent(invitation.id)}/${action}`);
        await loadInvitations();
      } catch (error) {
        showError(region, error);
        button.disabled = false;
      }
    });
    return button;
  };
  const buttons = [];
  if (invitation.email) {
    buttons.push(act("Send again", "resend", "invitation-resend"));
  }
  buttons.push(act("Revoke", "revoke", "invitation-revoke"));
  return buttons;
}

async function loadInvitations() {
  const { invitations } = await api("GET", `${casePath}/invitations`);
  byId("no-invitations").hidden = invitations.length > 0;
  byId("invitation-table").hidden = invitations.length === 0;
  const now = Date.now();
  byId("invitation-rows").replaceChildren(
    ...invitations.map((invitation) => {
      let state = "Waiting";
      const open = !invitation.used_at && !invitation.revoked_at;
      if (invitation.used_at) {
        state = `Accepted ${formatDate(invitation.used_at, { withTime: true })}`;
      } else if (invitation.revoked_at) {
        state = "Revoked";
      } else if (toDate(invitation.expires_at) !== null && toDate(invitation.expires_at).getTime() < now) {
        state = "Expired";
      }
      return el(
        "tr",
        { dataset: { testid: "invitation-row" } },
        el("td", {}, invitation.display_name),
        el("td", {}, roleName(invitation.role)),
        el("td", {}, invitation.email || ""),
        el("td", {}, formatDate(invitation.expires_at, { withTime: true })),
        el("td", {}, state),
        el("td", {}, ...(open ? invitationActions(invitation) : [])),
      );
    }),
  );
}

async function load() {
  const answer = await api("GET", casePath);
  members = answer.members || [];
  renderCase(answer.case);
  renderMembers();
  byId("my-role").textContent = `You: ${roleName(answer.my_role)}`;
  renderHeader(session, { caseRole: answer.my_role });
  byId("case-content").hidden = false;
  byId("close-link").hidden = answer.my_role !== "neutral";
  // Both show their own errors in their own regions; the rest of the page need not wait.
  showSessions(caseId, { canSchedule: answer.my_role === "neutral" });
  showCalendarFeed();
  showFees(caseId, { role: answer.my_role, members, userId: session.user.id });
  if (answer.my_role === "neutral" || answer.my_role === "co_neutral") {
    byId("mail-reference").value = answer.case.mail_reference || "";
    byId("title-in-mail").checked = Boolean(answer.case.title_in_mail);
    byId("invite-section").hidden = false;
    await loadInvitations();
  }
}

// Someone accepted an invitation: their name joins the people and, for a party, the
// parties a new counsel can be invited for (socket.io /case, docs/signaling.md).
async function refreshMembers() {
  try {
    const answer = await api("GET", casePath);
    members = answer.members || [];
    renderMembers();
  } catch (error) {
    showError(byId("page-error"), error);
  }
}

function followMembers() {
  const socket = io("/case", { transports: ["websocket"], withCredentials: true });
  // Joined (again, after a lost connection): what changed meanwhile is fetched once.
  socket.on("connect", () => socket.emit("case.join", { case_id: caseId }, () => refreshMembers()));
  socket.on("case.closed", (event) => {
    if (event && event.case_id === caseId) {
      window.location.assign("/closed");
    }
  });
  socket.on("case.members", (event) => {
    if (event && event.case_id === caseId) {
      refreshMembers();
    }
  });
}

const roleSelect = byId("invite-role");
roleSelect.addEventListener("change", () => {
  byId("represents-field").hidden = roleSelect.value !== "counsel";
});

const inviteForm = byId("invite-form");
inviteForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("invite-error");
  const role = roleSelect.value;
  const displayName = byId("invite-name").value.trim();
  if (!displayName) {
    showError(region, new Error("Enter the name this person will be shown under."));
    return;
  }
  const body = { role, display_name: displayName };
  if (role === "counsel") {
    const represents = byId("invite-represents").value;
    if (!represents) {
      showError(region, new Error("Choose the party this counsel represents."));
      return;
    }
    // Send the id as the server gave it (number or string), not the select's text value.
    const party = members.find((member) => String(member.user_id) === represents);
    body.represents = party ? party.user_id : represents;
  }
  const hours = byId("invite-expires").value.trim();
  if (hours) {
    const value = Number(hours);
    if (!Number.isInteger(value) || value < 1 || value > 720) {
      showError(region, new Error("An invitation can be valid for 1 to 720 hours."));
      return;
    }
    body.expires_in_hours = value;
  }
  const email = byId("invite-email").value.trim();
  if (email) {
    body.email = email;
  }
  byId("invite-created").hidden = true;
  const answer = await submitting(inviteForm, region, () => api("POST", `${casePath}/invitations`, body));
  if (!answer) {
    return;
  }
  byId("invite-created-name").textContent = displayName;
  byId("invitation-link").textContent = new URL(answer.url, window.location.origin).href;
  byId("invite-mailed").hidden = !answer.invitation.email;
  byId("invite-send").hidden = Boolean(answer.invitation.email);
  byId("invite-created").hidden = false;
  byId("invite-name").value = "";
  byId("invite-email").value = "";
  try {
    await loadInvitations();
  } catch (error) {
    showError(region, error);
  }
});

const namingForm = byId("naming-form");
namingForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    reference: byId("mail-reference").value.trim() || null,
    title_in_mail: byId("title-in-mail").checked,
  };
  await submitting(namingForm, byId("naming-error"), () => api("POST", `${casePath}/mail-naming`, body));
});

byId("copy-link").addEventListener("click", async () => {
  const button = byId("copy-link");
  try {
    await navigator.clipboard.writeText(byId("invitation-link").textContent);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select the link and copy it";
  }
});

try {
  await load();
  followMembers();
} catch (error) {
  byId("case-content").hidden = true;
  showError(byId("page-error"), error);
}
