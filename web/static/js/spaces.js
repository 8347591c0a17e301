// /cases/{case_id}/spaces: the spaces of a case the reader may see, with unread counts that
// follow new messages live; neutrals also create spaces here.

import { api, requireStage } from "./api.js";
import { byId, el } from "./dom.js";
import { showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";
import { connectSpaces } from "./space-socket.js";

const caseId = decodeURIComponent(window.location.pathname.split("/")[2] || "");
const casePath = `/api/cases/${encodeURIComponent(caseId)}`;
const pagePath = `/cases/${encodeURIComponent(caseId)}`;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;
byId("case-link").href = pagePath;

let spaces = [];
const badges = new Map();
let socket = null;

function renderSpaces() {
  byId("no-spaces").hidden = spaces.length > 0;
  byId("space-list").hidden = spaces.length === 0;
  badges.clear();
  byId("space-list").replaceChildren(
    ...spaces.map((space) => {
      const badge = el("span", { class: "badge", dataset: { testid: "unread" }, hidden: space.unread === 0 }, String(space.unread));
      badges.set(space.id, badge);
      const name = space.member
        ? el("a", { href: `${pagePath}/spaces/${encodeURIComponent(space.id)}`, class: "space-name" }, space.name)
        : el("span", { class: "space-name" }, space.name);
      return el(
        "li",
        { dataset: { testid: "space", spaceId: space.id } },
        name,
        badge,
        space.archived ? el("span", { class: "tag" }, "Archived") : null,
        space.member ? null : el("span", { class: "hint" }, "You are not a member"),
      );
    }),
  );
}

function renderChoices(members) {
  const others = members.filter((member) => String(member.user_id) !== String(session.user.id));
  byId("member-choices").replaceChildren(
    ...others.map((member) => {
      const id = `member-${member.user_id}`;
      return el(
        "div",
        { class: "field check" },
        el("input", { type: "checkbox", id, value: member.user_id, name: "member" }),
        el("label", { for: id }, `${member.display_name} (${member.role.replace("_", "-")})`),
      );
    }),
  );
}

async function load() {
  const [caseAnswer, listing] = await Promise.all([api("GET", casePath), api("GET", `${casePath}/spaces`)]);
  byId("case-link").textContent = caseAnswer.case.title;
  renderHeader(session, { caseRole: caseAnswer.my_role });
  document.title = `Spaces · ${caseAnswer.case.title} · Caucus`;
  spaces = listing.spaces;
  renderSpaces();
  if (listing.can_manage) {
    renderChoices(caseAnswer.members);
    byId("create-section").hidden = false;
  }
  follow();
}

function follow() {
  if (socket === null) {
    socket = connectSpaces();
    socket.on("message.new", (message) => {
      const space = spaces.find((candidate) => candidate.id === message.space_id);
      if (space && String(message.author_id) !== String(session.user.id)) {
        space.unread += 1;
        const badge = badges.get(space.id);
        badge.textContent = String(space.unread);
        badge.hidden = false;
      }
    });
    socket.on("connect", () => {
      for (const space of spaces.filter((candidate) => candidate.member)) {
        socket.emit("space.subscribe", { case_id: caseId, space_id: space.id }, () => {});
      }
    });
  } else if (socket.connected) {
    for (const space of spaces.filter((candidate) => candidate.member)) {
      socket.emit("space.subscribe", { case_id: caseId, space_id: space.id }, () => {});
    }
  }
}

const form = byId("create-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const region = byId("create-error");
  const name = byId("space-name").value.trim();
  if (!name) {
    showError(region, new Error("Give the space a name."));
    return;
  }
  const memberIds = [...form.querySelectorAll("input[name=member]:checked")].map((box) => box.value);
  const answer = await submitting(form, region, () =>
    api("POST", `${casePath}/spaces`, { name, member_ids: memberIds }),
  );
  if (!answer) {
    return;
  }
  form.reset();
  const listing = await api("GET", `${casePath}/spaces`);
  spaces = listing.spaces;
  renderSpaces();
  follow();
});

try {
  await load();
} catch (error) {
  showError(byId("page-error"), error);
}
