// /cases/{case_id}/spaces/{space_id}: one space's messages (live), files (upload with
// progress, download, preview) and, for neutrals, its members and name.

import { ApiError, api, getSession, requireStage } from "./api.js";
import { byId, el, formatDate, roleName } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import { renderHeader } from "./header.js";
import { call, connectSpaces } from "./space-socket.js";
import { hearingElements, setupHearingRecording } from "./hearing-recording.js";
import { clockText, setupVideoMessages } from "./video-message.js";
import { ClauseEditor } from "./agreement-editor.js";

const [, , rawCaseId, , rawSpaceId] = window.location.pathname.split("/");
const caseId = decodeURIComponent(rawCaseId || "");
const spaceId = decodeURIComponent(rawSpaceId || "");
const casePath = `/api/cases/${encodeURIComponent(caseId)}`;
const spacePath = `${casePath}/spaces/${encodeURIComponent(spaceId)}`;
const where = { case_id: caseId, space_id: spaceId };

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;
byId("case-link").href = `/cases/${encodeURIComponent(caseId)}`;
byId("spaces-link").href = `/cases/${encodeURIComponent(caseId)}/spaces`;

const state = {
  me: String(session.user.id),
  canManage: false,
  space: null,
  members: [],
  people: [], // everybody in the case, for author names and adding members
  messages: new Map(), // id -> message, shown in seq order
  oldest: null,
  files: new Map(),
  lastRead: 0,
};
let socket = null;

function personName(userId) {
  const person = state.people.find((candidate) => String(candidate.user_id) === String(userId));
  return person ? person.display_name : "Former participant";
}

function formatSize(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} ${units[0]}` : `${value.toFixed(1)} ${units[unit]}`;
}

// -- the space and its members -------------------------------------------------------------
function renderSpace() {
  const space = state.space;
  document.title = `${space.name} · Caucus`;
  byId("space-name").textContent = space.name;
  byId("archived-tag").hidden = !space.archived;
  byId("send-form").hidden = space.archived;
  byId("upload-form").hidden = space.archived;
  byId("video-message").hidden = space.archived;
  byId("rename-input").value = space.name;
  byId("archive-toggle").textContent = space.archived ? "Reopen" : "Archive";
}

function renderMembers() {
  byId("members").replaceChildren(
    ...state.members.map((member) => {
      const remove = state.canManage
        ? el("button", { type: "button", class: "quiet", dataset: { testid: "remove-member" } }, "Remove")
        : null;
      if (remove) {
        remove.addEventListener("click", () => manage(() => api("DELETE", `${spacePath}/members/${encodeURIComponent(member.user_id)}`)));
      }
      return el(
        "li",
        { dataset: { testid: "space-member", userId: member.user_id } },
        el("span", { class: "member-name" }, member.display_name),
        el("span", { class: "tag" }, roleName(member.role)),
        remove,
      );
    }),
  );
  const inSpace = new Set(state.members.map((member) => String(member.user_id)));
  const candidates = state.people.filter((person) => !inSpace.has(String(person.user_id)));
  byId("add-member").replaceChildren(
    el("option", { value: "" }, candidates.length ? "Choose a person" : "Everybody is a member"),
    ...candidates.map((person) => el("option", { value: person.user_id }, `${person.display_name} (${roleName(person.role)})`)),
  );
}

async function manage(action) {
  const region = byId("manage-error");
  clearError(region);
  try {
    const answer = await action();
    if (answer && answer.members) {
      state.members = answer.members;
      renderMembers();
    }
    if (answer && answer.space) {
      state.space = answer.space;
      renderSpace();
    }
  } catch (error) {
    showError(region, error);
  }
}

byId("add-member-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const userId = byId("add-member").value;
  if (userId) {
    manage(() => api("POST", `${spacePath}/members`, { user_id: userId }));
  }
});
byId("rename-form").addEventListener("submit", (event) => {
  event.preventDefault();
  manage(() => api("PATCH", spacePath, { name: byId("rename-input").value }));
});
byId("archive-toggle").addEventListener("click", () => {
  manage(() => api("PATCH", spacePath, { archived: !state.space.archived }));
});

// -- messages ------------------------------------------------------------------------------
function messageItem(message) {
  const mine = String(message.author_id) === state.me;
  let body;
  if (message.deleted) {
    body = el("p", { class: "message-body removed" }, "Message removed by the neutral.");
  } else if (message.kind === "video" && message.file_id) {
    // preload="metadata": the browser shows the first frame and the length; the server
    // decrypts only the ranges the player asks for, so seeking works.
    body = el(
      "div",
      { class: "message-body video-body" },
      el("video", {
        src: fileUrl({ id: message.file_id }, true),
        controls: true,
        preload: "metadata",
        playsinline: true,
        "aria-label": `Video message from ${personName(message.author_id)}`,
        dataset: { testid: "video-player" },
      }),
      el("span", { class: "hint", dataset: { testid: "video-duration" } }, `Video message · ${clockText(message.duration_s)}`),
    );
  } else if (message.kind === "video_failed") {
    body = el("p", { class: "message-body failed", dataset: { testid: "video-failed" } }, message.body);
  } else {
    body = el("p", { class: "message-body", dataset: { testid: "message-body" } }, message.body);
  }
  const actions = el("span", { class: "message-actions" });
  if (!message.deleted && mine && !state.space.archived && (message.kind || "text") === "text") {
    const edit = el("button", { type: "button", class: "quiet", dataset: { testid: "edit-message" } }, "Edit");
    edit.addEventListener("click", () => startEdit(message));
    actions.append(edit);
  }
  if (!message.deleted && state.canManage) {
    const remove = el("button", { type: "button", class: "quiet", dataset: { testid: "delete-message" } }, "Delete");
    remove.addEventListener("click", async () => {
      if (window.confirm("Delete this message for everybody?")) {
        try {
          await call(socket, "message.delete", { ...where, message_id: message.id });
        } catch (error) {
          showError(byId("send-error"), error);
        }
      }
    });
    actions.append(remove);
  }
  return el(
    "li",
    { class: mine ? "message mine" : "message", dataset: { testid: "message", messageId: message.id, seq: String(message.seq) } },
    el(
      "p",
      { class: "message-meta" },
      el("span", { class: "member-name", dataset: { testid: "message-author" } }, personName(message.author_id)),
      el("time", {}, formatDate(message.created_at, { withTime: true })),
      message.edited && !message.deleted ? el("span", { class: "tag", dataset: { testid: "edited" } }, "edited") : null,
      actions,
    ),
    body,
  );
}

function renderMessages() {
  const ordered = [...state.messages.values()].sort((a, b) => a.seq - b.seq);
  byId("no-messages").hidden = ordered.length > 0;
  // A video being played keeps playing: its item is reused while the message is unchanged.
  const shown = new Map([...byId("messages").children].map((item) => [item.dataset.messageId, item]));
  byId("messages").replaceChildren(
    ...ordered.map((message) => {
      const item = shown.get(message.id);
      const key = JSON.stringify([message.body, message.edited_at, message.deleted]);
      if (item && message.kind === "video" && item.dataset.key === key) {
        return item;
      }
      const fresh = messageItem(message);
      fresh.dataset.key = key;
      return fresh;
    }),
  );
}

function startEdit(message) {
  const item = byId("messages").querySelector(`[data-message-id="${CSS.escape(message.id)}"]`);
  if (!item) {
    return;
  }
  const input = el("textarea", { rows: "3", maxlength: "10000", "aria-label": "Edit message" });
  input.value = message.body;
  const save = el("button", { type: "submit", class: "primary" }, "Save");
  const cancel = el("button", { type: "button", class: "quiet" }, "Cancel");
  const form = el("form", { class: "edit-form" }, input, el("div", { class: "actions" }, save, cancel));
  cancel.addEventListener("click", renderMessages);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const reply = await call(socket, "message.edit", { ...where, message_id: message.id, body: input.value });
      state.messages.set(reply.message.id, reply.message);
      renderMessages();
    } catch (error) {
      showError(byId("send-error"), error);
    }
  });
  item.querySelector(".message-body").replaceWith(form);
  input.focus();
}

function addMessages(list) {
  for (const message of list) {
    state.messages.set(message.id, message);
  }
  renderMessages();
}

async function markRead() {
  const newest = Math.max(0, ...[...state.messages.values()].map((message) => message.seq));
  if (newest > state.lastRead && document.visibilityState === "visible") {
    state.lastRead = newest;
    try {
      await api("POST", `${spacePath}/read`, { seq: newest });
    } catch {
      // A read marker is a courtesy; the next one catches up.
    }
  }
}

async function loadEarlier() {
  const query = state.oldest ? `?before=${state.oldest}` : "";
  const page = await api("GET", `${spacePath}/messages${query}`);
  if (page.messages.length) {
    state.oldest = page.messages[0].seq;
  }
  byId("load-earlier").hidden = !page.has_more;
  addMessages(page.messages);
}

byId("load-earlier").addEventListener("click", () => loadEarlier().catch((error) => showError(byId("page-error"), error)));

const sendForm = byId("send-form");
sendForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byId("message-body");
  const body = input.value;
  if (!body.trim()) {
    showError(byId("send-error"), new Error("Write a message first."));
    return;
  }
  const reply = await submitting(sendForm, byId("send-error"), () => call(socket, "message.send", { ...where, body }));
  if (reply) {
    input.value = "";
    addMessages([reply.message]);
    markRead();
  }
});
byId("message-body").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    sendForm.requestSubmit();
  }
});

// -- files ---------------------------------------------------------------------------------
function fileUrl(file, inline = false) {
  return `${spacePath}/files/${encodeURIComponent(file.id)}${inline ? "?inline=1" : ""}`;
}

function previewable(file) {
  return file.content_type.startsWith("image/") || file.content_type.startsWith("video/") || file.content_type === "application/pdf";
}

function showPreview(file) {
  let view;
  if (file.content_type.startsWith("image/")) {
    view = el("img", { src: fileUrl(file, true), alt: file.name, dataset: { testid: "preview-image" } });
  } else if (file.content_type.startsWith("video/")) {
    view = el("video", { src: fileUrl(file, true), controls: true, preload: "metadata", dataset: { testid: "preview-video" } });
  } else {
    view = el("iframe", { src: fileUrl(file, true), title: file.name, dataset: { testid: "preview-pdf" } });
  }
  byId("preview-name").textContent = file.name;
  byId("preview-body").replaceChildren(view);
  byId("preview").hidden = false;
}

byId("preview-close").addEventListener("click", () => {
  byId("preview-body").replaceChildren();
  byId("preview").hidden = true;
});

function renderFiles() {
  const files = [...state.files.values()].sort((a, b) => a.created_at - b.created_at);
  byId("no-files").hidden = files.length > 0;
  byId("files").replaceChildren(
    ...files.map((file) => {
      const preview = previewable(file) ? el("button", { type: "button", class: "quiet", dataset: { testid: "preview-file" } }, "Preview") : null;
      if (preview) {
        preview.addEventListener("click", () => showPreview(file));
      }
      return el(
        "li",
        { dataset: { testid: "file", fileId: file.id } },
        el("a", { href: fileUrl(file), download: file.name, dataset: { testid: "file-name" } }, file.name),
        el("span", { class: "hint" }, `${formatSize(file.size)} · ${personName(file.uploader_id)}`),
        preview,
      );
    }),
  );
}

function uploadOne(file, csrfToken) {
  const progress = el("progress", { max: "100", value: "0", "aria-label": `Uploading ${file.name}`, dataset: { testid: "upload-progress" } });
  const status = el("span", { class: "hint", dataset: { testid: "upload-status" } }, "Uploading…");
  const row = el("li", { dataset: { testid: "upload" } }, el("span", {}, file.name), progress, status);
  byId("uploads").append(row);
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${spacePath}/files`);
    request.setRequestHeader("X-CSRF-Token", csrfToken);
    request.setRequestHeader("X-File-Name", encodeURIComponent(file.name));
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        progress.value = Math.round((event.loaded / event.total) * 100);
      }
    });
    request.addEventListener("load", () => {
      const answer = request.response;
      if (request.status === 201 && answer && answer.file) {
        progress.value = 100;
        status.textContent = "Uploaded";
        state.files.set(answer.file.id, answer.file);
        renderFiles();
        window.setTimeout(() => row.remove(), 4000);
        resolve(true);
      } else {
        const message = answer && answer.error ? answer.error.message : `The upload failed (${request.status}).`;
        status.textContent = message;
        row.classList.add("failed");
        resolve(false);
      }
    });
    request.addEventListener("error", () => {
      status.textContent = "The upload was interrupted. Check your connection and try again.";
      row.classList.add("failed");
      resolve(false);
    });
    request.send(file); // streams the file; the server sniffs its type from the bytes
  });
}

const uploadForm = byId("upload-form");
uploadForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byId("upload-input");
  const files = [...input.files];
  if (files.length === 0) {
    showError(byId("upload-error"), new Error("Choose one or more files first."));
    return;
  }
  clearError(byId("upload-error"));
  const { csrf_token: csrfToken } = await getSession();
  input.value = "";
  for (const file of files) {
    await uploadOne(file, csrfToken);
  }
});

// -- settlement agreements -----------------------------------------------------------------
const agreementsPath = `${spacePath}/agreements`;
const AGREEMENT_STATUS = { draft: "Draft", final: "Out for signature", sealed: "Signed and sealed" };

function agreementPage(agreementId) {
  return `/cases/${encodeURIComponent(caseId)}/spaces/${encodeURIComponent(spaceId)}/agreements/${encodeURIComponent(agreementId)}`;
}

function renderAgreements(answer) {
  byId("no-agreements").hidden = answer.agreements.length > 0;
  byId("agreement-list").replaceChildren(
    ...answer.agreements.map((agreement) =>
      el(
        "li",
        { dataset: { testid: "agreement-item", agreementId: agreement.id, status: agreement.status } },
        el("a", { href: agreementPage(agreement.id), dataset: { testid: "agreement-link" } }, agreement.title),
        el("span", { class: "tag", dataset: { testid: "agreement-status" } }, AGREEMENT_STATUS[agreement.status] || agreement.status),
        el("span", { class: "hint" }, `Version ${agreement.current_version} · ${formatDate(agreement.created_at)}`),
      ),
    ),
  );
  byId("agreement-create-form").hidden = !answer.can_create || state.space.archived;
}

const agreementEditor = new ClauseEditor({
  titleInput: byId("agreement-title"),
  list: byId("agreement-clauses"),
  add: byId("agreement-add-clause"),
  prefix: "agreement",
});
agreementEditor.setText({ title: "", clauses: [] });

const createForm = byId("agreement-create-form");
createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await submitting(createForm, byId("agreement-create-error"), () => api("POST", agreementsPath, agreementEditor.text()));
  if (answer) {
    window.location.assign(agreementPage(answer.agreement.id));
  }
});

async function loadAgreements() {
  try {
    renderAgreements(await api("GET", agreementsPath));
  } catch (error) {
    showError(byId("agreements-error"), error);
  }
}

// -- live ----------------------------------------------------------------------------------
function removed(event) {
  if (event && event.reason === "case_closed") {
    window.location.assign("/closed");
    return;
  }
  byId("space-content").hidden = true;
  byId("removed-notice").hidden = false;
  if (socket) {
    socket.disconnect();
  }
}

function connect() {
  socket = connectSpaces();
  const live = byId("live-state");
  socket.on("connect", async () => {
    try {
      await call(socket, "space.subscribe", where);
      live.textContent = "Live";
      live.dataset.state = "live";
      // Catch up on what arrived while the socket was away.
      const page = await api("GET", `${spacePath}/messages`);
      addMessages(page.messages);
      markRead();
    } catch (error) {
      if (error.code === "not_found") {
        removed();
      } else {
        showError(byId("page-error"), error);
      }
    }
  });
  socket.on("disconnect", () => {
    live.textContent = "Reconnecting…";
    live.dataset.state = "offline";
  });
  socket.on("message.new", (message) => {
    addMessages([message]);
    markRead();
  });
  socket.on("message.edited", (message) => addMessages([message]));
  socket.on("message.deleted", (message) => addMessages([message]));
  socket.on("file.new", (file) => {
    state.files.set(file.id, file);
    renderFiles();
  });
  socket.on("space.updated", (space) => {
    state.space = space;
    renderSpace();
    renderMessages();
  });
  socket.on("agreement.changed", () => loadAgreements()); // new, or a version or status changed
  socket.on("space.removed", removed);
}

document.addEventListener("visibilitychange", markRead);

setupVideoMessages(
  where,
  {
    record: byId("video-record"),
    stop: byId("video-stop"),
    status: byId("video-status"),
    preview: byId("video-preview"),
    review: byId("video-review"),
    send: byId("video-send"),
    rerecord: byId("video-rerecord"),
    discard: byId("video-discard"),
  },
  {
    onMessage: (message) => {
      clearError(byId("video-error"));
      addMessages([message]);
      markRead();
    },
    onError: (error) => showError(byId("video-error"), error),
  },
);

async function load() {
  const [answer, caseAnswer, files] = await Promise.all([
    api("GET", spacePath),
    api("GET", casePath),
    api("GET", `${spacePath}/files`),
  ]);
  state.space = answer.space;
  state.members = answer.members;
  state.canManage = answer.can_manage;
  state.people = caseAnswer.members;
  renderHeader(session, { caseRole: caseAnswer.my_role });
  byId("case-link").textContent = caseAnswer.case.title;
  for (const file of files.files) {
    state.files.set(file.id, file);
  }
  renderSpace();
  renderMembers();
  byId("manage").hidden = !state.canManage;
  if (state.canManage && !state.space.archived) {
    setupHearingRecording(where, hearingElements(), {
      onError: (error) => showError(byId("hearing-error"), error),
      onClear: () => clearError(byId("hearing-error")),
    });
  }
  await loadEarlier();
  renderFiles();
  await loadAgreements();
  byId("space-content").hidden = false;
  markRead();
  connect();
}

try {
  await load();
} catch (error) {
  if (error instanceof ApiError && error.status === 404) {
    showError(byId("page-error"), new Error("This space does not exist, or you are not a member of it."));
  } else {
    showError(byId("page-error"), error);
  }
}
