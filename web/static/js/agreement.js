// /cases/{case_id}/spaces/{space_id}/agreements/{agreement_id}: one settlement agreement
// (docs/agreements.md). Members read its versions clause by clause, compare any two and
// comment on clauses; counsel propose changes; the neutral edits, takes over proposals and
// publishes a version for signature; the named signatories review the exact text and its
// SHA-256, confirm their identity again and sign; once sealed, everybody downloads the
// sealed PDF and its signature file.

import { ApiError, api, getSession, requireStage } from "./api.js";
import { byId, el, formatDate, humanize, roleName } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";
import { ClauseEditor } from "./agreement-editor.js";
import { call, connectSpaces } from "./space-socket.js";

const [, , rawCaseId, , rawSpaceId, , rawAgreementId] = window.location.pathname.split("/");
const caseId = decodeURIComponent(rawCaseId || "");
const spaceId = decodeURIComponent(rawSpaceId || "");
const agreementId = decodeURIComponent(rawAgreementId || "");
const casePath = `/api/cases/${encodeURIComponent(caseId)}`;
const spacePath = `${casePath}/spaces/${encodeURIComponent(spaceId)}`;
const agreementPath = `${spacePath}/agreements/${encodeURIComponent(agreementId)}`;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;
byId("case-link").href = `/cases/${encodeURIComponent(caseId)}`;
byId("space-link").href = `/cases/${encodeURIComponent(caseId)}/spaces/${encodeURIComponent(spaceId)}`;

const STATUS = { draft: "Draft", final: "Out for signature", sealed: "Signed and sealed" };
const SIGNING_ROLES = new Set(["party", "counsel"]);
const AUTH_METHODS = {
  password: "password",
  "password+totp": "password and authenticator code",
  "password+recovery_code": "password and recovery code",
};

const state = {
  view: null, // the agreement view of the API
  shown: null, // the version shown clause by clause
  comments: [],
  people: [], // the case's members: names
  spaceMembers: [],
  adoptedFrom: null,
};

function personName(userId) {
  const person = state.people.find((candidate) => String(candidate.user_id) === String(userId));
  return person ? person.display_name : "Former participant";
}

const editor = new ClauseEditor({
  titleInput: byId("edit-title"),
  list: byId("edit-clauses"),
  add: byId("edit-add-clause"),
  prefix: "edit",
});

// -- the version shown, its clauses and their comments -------------------------------------
function clauseComments(clause) {
  return state.comments.filter((comment) => comment.version === state.shown.number && comment.clause === clause.number);
}

function commentForm(clause) {
  const id = `comment-${clause.number}`;
  const input = el("textarea", { id, rows: "2", maxlength: "5000", dataset: { testid: "comment-body" } });
  const error = el("p", { class: "alert", role: "alert", hidden: true, dataset: { testid: "comment-error" } });
  const form = el(
    "form",
    { method: "post", class: "comment-form", novalidate: true },
    error,
    el("div", { class: "field" }, el("label", { for: id }, `Comment on clause ${clause.number}`), input),
    el("div", { class: "actions" }, el("button", { type: "submit", dataset: { testid: "comment-send" } }, "Add comment")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.value.trim()) {
      showError(error, new Error("Write a comment first."));
      return;
    }
    const answer = await submitting(form, error, () =>
      api("POST", `${agreementPath}/comments`, { version: state.shown.number, clause: clause.number, body: input.value }),
    );
    if (answer) {
      state.comments.push(answer.comment);
      renderShown();
    }
  });
  return form;
}

function clauseItem(clause) {
  // The API renders the Markdown safely (no raw HTML, no images, checked links) and
  // guarantees that `html` is safe to insert; it is the only HTML this page inserts.
  const body = el("div", { class: "clause-body", dataset: { testid: "clause-body" } });
  body.innerHTML = clause.html;
  const comments = clauseComments(clause);
  return el(
    "li",
    { class: "clause", dataset: { testid: "clause", number: String(clause.number) } },
    el("h4", { class: "clause-heading", dataset: { testid: "clause-heading" } }, `${clause.number}. ${clause.heading || ""}`.trim()),
    body,
    el(
      "ul",
      { class: "comments", dataset: { testid: "comments" } },
      ...comments.map((comment) =>
        el(
          "li",
          { dataset: { testid: "comment" } },
          el("span", { class: "member-name" }, personName(comment.author_id)),
          " ",
          el("time", { class: "hint" }, formatDate(comment.created_at, { withTime: true })),
          el("p", { class: "prose", dataset: { testid: "comment-text" } }, comment.body),
        ),
      ),
    ),
    commentForm(clause),
  );
}

function renderShown() {
  const version = state.shown;
  byId("shown-version").textContent = String(version.number);
  const current = version.number === state.view.agreement.current_version;
  byId("shown-kind").textContent = version.kind === "proposal" ? "Proposal" : current ? "Current draft" : "Earlier version";
  byId("shown-meta").textContent =
    `${version.kind === "proposal" ? "Proposed" : "Written"} by ${personName(version.author_id)}, ${formatDate(version.created_at, { withTime: true })}` +
    (version.based_on ? ` · based on version ${version.based_on}` : "") +
    (version.adopted_from ? ` · takes over proposal ${version.adopted_from}` : "");
  byId("shown-title").textContent = version.title;
  byId("clauses").replaceChildren(...version.clauses.map(clauseItem));
}

async function show(number) {
  const answer = number === state.view.current.number ? { version: state.view.current } : await api("GET", `${agreementPath}/versions/${number}`);
  state.shown = answer.version;
  renderShown();
}

// -- versions and comparing -----------------------------------------------------------------
function renderVersions() {
  const view = state.view;
  byId("versions").replaceChildren(
    ...[...view.versions].reverse().map((version) => {
      const button = el("button", { type: "button", class: "quiet", dataset: { testid: "show-version" } }, "Show");
      button.addEventListener("click", () => show(version.number).catch((error) => showError(byId("page-error"), error)));
      const tags = [];
      if (version.kind === "proposal") {
        tags.push("proposal");
      }
      if (version.number === view.agreement.current_version) {
        tags.push("current draft");
      }
      if (version.number === view.agreement.final_version) {
        tags.push("for signature");
      }
      return el(
        "li",
        { dataset: { testid: "version", number: String(version.number), kind: version.kind } },
        el("span", { class: "member-name" }, `Version ${version.number}`),
        ...tags.map((tag) => el("span", { class: "tag" }, tag)),
        el("span", { class: "hint" }, ` ${personName(version.author_id)}, ${formatDate(version.created_at, { withTime: true })}`),
        button,
      );
    }),
  );
  for (const select of [byId("compare-from"), byId("compare-to")]) {
    const chosen = select.value;
    select.replaceChildren(...view.versions.map((version) => el("option", { value: String(version.number) }, `Version ${version.number}${version.kind === "proposal" ? " (proposal)" : ""}`)));
    if (chosen) {
      select.value = chosen;
    }
  }
  const numbers = view.versions.map((version) => version.number);
  if (!byId("compare-from").dataset.touched && numbers.length > 1) {
    byId("compare-from").value = String(numbers[numbers.length - 2]);
    byId("compare-to").value = String(numbers[numbers.length - 1]);
  }
}

for (const select of [byId("compare-from"), byId("compare-to")]) {
  select.addEventListener("change", () => {
    byId("compare-from").dataset.touched = "1";
  });
}

const DIFF_MARK = { equal: " ", delete: "−", insert: "+" };

function renderDiff(diff) {
  const parts = [];
  if (diff.title_changed) {
    parts.push("the title changed");
  }
  if (diff.changed_clauses.length) {
    parts.push(`clauses changed: ${diff.changed_clauses.join(", ")}`);
  }
  if (diff.added_clauses.length) {
    parts.push(`clauses added: ${diff.added_clauses.join(", ")}`);
  }
  if (diff.removed_clauses.length) {
    parts.push(`clauses removed: ${diff.removed_clauses.join(", ")}`);
  }
  byId("diff-summary").textContent =
    `Version ${diff.from.number} → version ${diff.to.number}: ` + (parts.length ? parts.join("; ") + "." : "the texts are the same.");
  byId("diff-lines").replaceChildren(
    ...diff.lines.map((line) =>
      el("li", { class: `diff-${line.op}`, dataset: { testid: "diff-line", op: line.op } }, el("span", { class: "diff-mark", "aria-hidden": "true" }, DIFF_MARK[line.op] || " "), line.text),
    ),
  );
  byId("diff").hidden = false;
}

const compareForm = byId("compare-form");
compareForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const from = byId("compare-from").value;
  const to = byId("compare-to").value;
  const diff = await submitting(compareForm, byId("compare-error"), () =>
    api("GET", `${agreementPath}/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`),
  );
  if (diff) {
    renderDiff(diff);
  }
});

// -- editing, proposing, publishing ---------------------------------------------------------
function renderEditing() {
  const { me, agreement, versions } = state.view;
  const neutral = me.can_edit;
  byId("edit-section").hidden = !(me.can_edit || me.can_propose);
  if (neutral) {
    byId("edit-heading").textContent = "Edit the draft";
    byId("edit-hint").textContent =
      agreement.status === "final"
        ? "This version is out for signature: saving an edit withdraws it and voids every signature given on it."
        : `Saving makes a new version based on version ${agreement.current_version}.`;
    byId("edit-submit").textContent = "Save as a new version";
  } else {
    byId("edit-heading").textContent = "Propose a change";
    byId("edit-hint").textContent = `Your proposal starts from version ${agreement.current_version}; the neutral decides whether to take it over.`;
    byId("edit-submit").textContent = "Send the proposal";
  }
  const proposals = versions.filter((version) => version.kind === "proposal");
  byId("adopt").hidden = !neutral || proposals.length === 0;
  byId("adopt-proposal").replaceChildren(
    ...[...proposals].reverse().map((version) => el("option", { value: String(version.number) }, `Proposal ${version.number} by ${personName(version.author_id)}`)),
  );
  byId("adopting").hidden = state.adoptedFrom === null;
  byId("adopting").textContent = state.adoptedFrom === null ? "" : `Saving takes over proposal ${state.adoptedFrom}.`;

  byId("publish-section").hidden = !me.can_publish;
  byId("publish-version").textContent = String(agreement.current_version);
  const candidates = state.spaceMembers.filter((member) => SIGNING_ROLES.has(member.role));
  byId("signatory-choices").replaceChildren(
    ...candidates.map((member) => {
      const id = `signatory-${member.user_id}`;
      return el(
        "li",
        {},
        el("input", { type: "checkbox", id, value: member.user_id, dataset: { testid: "signatory-choice" } }),
        " ",
        el("label", { for: id }, `${member.display_name} (${roleName(member.role)})`),
      );
    }),
  );
}

byId("adopt-button").addEventListener("click", async () => {
  clearError(byId("edit-error"));
  try {
    const number = Number(byId("adopt-proposal").value);
    const { version } = await api("GET", `${agreementPath}/versions/${number}`);
    editor.setText(version);
    state.adoptedFrom = number;
    byId("adopting").textContent = `Saving takes over proposal ${number}.`;
    byId("adopting").hidden = false;
  } catch (error) {
    showError(byId("edit-error"), error);
  }
});

const editForm = byId("edit-form");
editForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const { me, agreement } = state.view;
  const answer = await submitting(editForm, byId("edit-error"), () => {
    const text = editor.text();
    if (me.can_edit) {
      const body = { ...text, based_on: agreement.current_version };
      if (state.adoptedFrom !== null) {
        body.adopted_from = state.adoptedFrom;
      }
      return api("POST", `${agreementPath}/versions`, body);
    }
    return api("POST", `${agreementPath}/proposals`, { ...text, based_on: agreement.current_version });
  });
  if (answer) {
    state.adoptedFrom = null;
    await render(answer);
    await show(answer.version);
  }
});

const publishForm = byId("publish-form");
publishForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const ids = [...byId("signatory-choices").querySelectorAll("input:checked")].map((input) => input.value);
  if (ids.length === 0) {
    showError(byId("publish-error"), new Error("Choose who signs."));
    return;
  }
  const answer = await submitting(publishForm, byId("publish-error"), () =>
    api("POST", `${agreementPath}/publish`, { version: state.view.agreement.current_version, signatory_ids: ids }),
  );
  if (answer) {
    await render(answer);
  }
});

// -- signing ---------------------------------------------------------------------------------
function signatureItem(signature) {
  let status;
  if (signature.voided) {
    status = `Voided by version ${signature.voided_by_version}${signature.signed ? ` (had signed ${formatDate(signature.signed_at, { withTime: true })})` : ""}`;
  } else if (signature.signed) {
    const how = AUTH_METHODS[signature.auth_method] || signature.auth_method;
    status = `Signed ${formatDate(signature.signed_at, { withTime: true })} as “${signature.typed_name}”, identity confirmed by ${how}`;
  } else {
    status = "Not signed yet";
  }
  return el(
    "li",
    {
      class: signature.voided ? "signature voided" : "signature",
      dataset: {
        testid: "signature",
        userId: signature.user_id,
        version: String(signature.version),
        state: signature.voided ? "voided" : signature.signed ? "signed" : "pending",
      },
    },
    el("span", { class: "member-name" }, signature.display_name || personName(signature.user_id)),
    el("span", { class: "tag" }, roleName(signature.role)),
    el("span", { class: "tag" }, `version ${signature.version}`),
    el("span", { class: "signature-state", dataset: { testid: "signature-state" } }, status),
  );
}

function renderSigning() {
  const { agreement, final, signatures, me } = state.view;
  const voided = signatures.filter((signature) => signature.voided && signature.signed);
  byId("voided-notice").hidden = voided.length === 0;
  if (voided.length) {
    const names = voided.map((signature) => signature.display_name || personName(signature.user_id));
    byId("voided-notice").textContent =
      `Signatures were voided by a later edit: ${names.join(", ")}. Each signature stays listed below as voided; only the version now out for signature counts.`;
  }
  byId("final-section").hidden = final === null && signatures.length === 0;
  if (final !== null) {
    byId("final-version").textContent = String(final.number);
    byId("final-text").textContent = final.canonical_text;
    byId("final-hash").textContent = final.document_sha256;
  } else {
    byId("final-version").textContent = "none now";
    byId("final-text").textContent = "The last version published was withdrawn by an edit. The neutral publishes a new one.";
    byId("final-hash").textContent = "";
  }
  byId("signatures").replaceChildren(...signatures.map(signatureItem));
  byId("signing").hidden = !me.can_sign;
  byId("signed-notice").hidden = !me.has_signed || agreement.status === "sealed";

  const sealed = agreement.status === "sealed";
  byId("sealed-section").hidden = !sealed;
  if (sealed) {
    byId("sealed-version").textContent = String(agreement.final_version);
    byId("sealed-at").textContent = formatDate(agreement.sealed_at, { withTime: true });
    byId("sealed-document-hash").textContent = agreement.document_sha256;
    byId("sealed-pdf-hash").textContent = agreement.pdf_sha256;
    byId("download-pdf").href = `${agreementPath}/sealed.pdf`;
    byId("download-signature").href = `${agreementPath}/sealed.sig`;
  }
}

const reauthForm = byId("reauth-form");
reauthForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  byId("reauth-status").textContent = "";
  const body = { password: byId("reauth-password").value };
  const code = byId("reauth-code").value.trim();
  if (code) {
    body.code = code;
  }
  const answer = await submitting(reauthForm, byId("reauth-error"), async () => {
    try {
      return await api("POST", "/api/account/reauth", body);
    } catch (error) {
      if (error.code === "code_required") {
        // two-factor sign-in was turned on since this page loaded
        byId("reauth-code-field").hidden = false;
      }
      throw error;
    }
  });
  if (answer) {
    byId("reauth-password").value = "";
    byId("reauth-code").value = "";
    const minutes = Math.round(answer.valid_for_seconds / 60);
    byId("reauth-status").textContent = `Identity confirmed. You can sign within ${minutes} minutes.`;
    byId("sign-name").focus();
  }
});

const signForm = byId("sign-form");
signForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = byId("sign-name").value;
  if (!name.trim()) {
    showError(byId("sign-error"), new Error("Type your full name."));
    return;
  }
  if (!byId("sign-confirm").checked) {
    showError(byId("sign-error"), new Error("Tick the box to confirm that you sign this text."));
    return;
  }
  const answer = await submitting(signForm, byId("sign-error"), () =>
    api("POST", `${agreementPath}/sign`, { document_sha256: state.view.final.document_sha256, full_name: name, confirm: true }),
  );
  if (answer) {
    byId("reauth-status").textContent = "";
    await render(answer);
  } else {
    byId("reauth-status").textContent = "";
  }
});

// -- the history ------------------------------------------------------------------------------
const EVENT_WORDS = {
  created: (d) => `created version ${d.version}`,
  edited: (d) => `saved version ${d.version}${d.adopted_from ? `, taking over proposal ${d.adopted_from}` : ""}`,
  proposed: (d) => `proposed version ${d.version}`,
  published: (d) => `published version ${d.version} for signature`,
  withdrawn: (d) => `withdrew version ${d.version} (edited as version ${d.by_version})`,
  signed: (d) => `signed version ${d.version}`,
  signatures_voided: (d) => `voided the signatures on version ${d.version} by saving version ${d.by_version}`,
  sealed: (d) => `sealed version ${d.version}`,
};

function renderEvents() {
  byId("events").replaceChildren(
    ...state.view.events.map((event) => {
      const words = EVENT_WORDS[event.kind];
      const actor = event.actor_id ? personName(event.actor_id) : "Caucus";
      return el(
        "li",
        { dataset: { testid: "event", kind: event.kind } },
        el("time", { class: "hint" }, formatDate(event.at, { withTime: true })),
        " ",
        `${actor} ${words ? words(event.detail || {}) : humanize(event.kind)}`,
      );
    }),
  );
}

// -- loading -----------------------------------------------------------------------------------
async function render(view) {
  const before = state.view;
  state.view = view;
  const { agreement } = view;
  document.title = `${agreement.title} · Caucus`;
  byId("agreement-title").textContent = agreement.title;
  byId("agreement-status").textContent = STATUS[agreement.status] || agreement.status;
  byId("agreement-status").dataset.status = agreement.status;
  state.comments = (await api("GET", `${agreementPath}/comments`)).comments;
  if (before === null || before.agreement.current_version !== agreement.current_version) {
    editor.setText(view.current);
  }
  if (state.shown === null || state.shown.number === (before && before.agreement.current_version)) {
    state.shown = view.current;
  }
  renderShown();
  renderVersions();
  renderEditing();
  renderSigning();
  renderEvents();
}

async function load() {
  const [view, caseAnswer, spaceAnswer] = await Promise.all([api("GET", agreementPath), api("GET", casePath), api("GET", spacePath)]);
  state.people = caseAnswer.members;
  state.spaceMembers = spaceAnswer.members;
  renderHeader(session, { caseRole: caseAnswer.my_role });
  byId("case-link").textContent = caseAnswer.case.title;
  byId("space-link").textContent = spaceAnswer.space.name;
  const fresh = await getSession({ refresh: true });
  byId("reauth-code-field").hidden = !(fresh.user && fresh.user.totp_enabled);
  await render(view);
  byId("agreement-content").hidden = false;
}

// -- live: every change to this agreement (a version, a proposal, a comment, publishing, a
// signature) arrives as `agreement.changed` on the space's socket, and the page reloads it;
// unsaved edits are never replaced: the person is told, and chooses when to reload.
function hasTyping() {
  if (editor.isDirty()) {
    return true;
  }
  const fields = byId("agreement-content").querySelectorAll("textarea, input[type=text], input[type=password]");
  return [...fields].some((field) => !field.closest("#edit-form") && field.value.trim() !== "");
}

async function refresh() {
  const [view, { comments }] = await Promise.all([api("GET", agreementPath), api("GET", `${agreementPath}/comments`)]);
  if (JSON.stringify([view, comments]) === JSON.stringify([state.view, state.comments])) {
    return; // nothing new (the event was for what this page itself just did)
  }
  if (hasTyping()) {
    byId("changed-notice").hidden = false; // re-rendering would drop what is being typed
    return;
  }
  byId("changed-notice").hidden = true;
  await load();
}

byId("changed-reload").addEventListener("click", async () => {
  byId("changed-notice").hidden = true;
  state.adoptedFrom = null;
  byId("adopting").hidden = true;
  try {
    await load();
    editor.setText(state.view.current); // what was typed is dropped, as the button says
  } catch (error) {
    showError(byId("page-error"), error);
  }
});

function connect() {
  const socket = connectSpaces();
  socket.on("connect", async () => {
    try {
      await call(socket, "space.subscribe", { case_id: caseId, space_id: spaceId });
      await refresh(); // what changed while the socket was away
    } catch (error) {
      showError(byId("page-error"), error);
    }
  });
  socket.on("agreement.changed", async (change) => {
    if (change && change.agreement_id === agreementId) {
      try {
        await refresh();
      } catch (error) {
        showError(byId("page-error"), error);
      }
    }
  });
  socket.on("space.removed", () => socket.disconnect());
}

try {
  await load();
  connect();
} catch (error) {
  if (error instanceof ApiError && error.status === 404) {
    showError(byId("page-error"), new Error("This agreement does not exist, or you are not a member of its space."));
  } else {
    showError(byId("page-error"), error);
  }
}
