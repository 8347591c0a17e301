// The live rooms on the live page: which room you are in and who is with you, the
// mediator's broadcasts and timer warnings, "ask the mediator" (a raised hand), the room's
// whiteboard, and for a neutral the console that runs the rooms (see docs/signaling.md,
// "Live rooms"): a card per room with its people and their state (muted, camera off,
// speaking, hand raised), drag and drop between cards or select and "Move to…", timers on
// the cards, the queue of requests for the mediator, and confirmations before removing
// someone or closing a room with people in it.
// live.js owns the socket and the media; it hands this module the socket's events.

import { confirmAction } from "./confirm-dialog.js";
import { byId, el, roleName } from "./dom.js";
import { showError } from "./feedback.js";
import { stateBadges } from "./live-layout.js";

const NEUTRAL_ROLES = ["neutral", "co_neutral"];
const MAX_MESSAGES = 4;
const DRAG_TYPE = "application/x-caucus-person";

export function liveRooms({ caseId, request, onChange = () => {}, sendStatus = () => {} }) {
  const rooms = {
    view: null,
    seq: 0,
    strokes: [],
    drawing: null,
    picked: new Set(),
    status: new Map(), // user_id -> {muted, camera_off, speaking, hand} (live.person)
    requests: new Map(), // user_id -> the live.asked request, oldest first
    hand: false, // this person asked for the mediator and is waiting
  };

  function isNeutral() {
    return Boolean(rooms.view && NEUTRAL_ROLES.includes(rooms.view.you.role));
  }

  function myRoom() {
    const view = rooms.view;
    if (!view) {
      return null;
    }
    return view.rooms.find((room) => room.id === view.you.room_id) || null;
  }

  function roomById(id) {
    return rooms.view ? rooms.view.rooms.find((room) => room.id === id) || null : null;
  }

  function personById(userId) {
    for (const room of rooms.view ? rooms.view.rooms : []) {
      const found = room.occupants.find((person) => person.user_id === userId);
      if (found) {
        return found;
      }
    }
    return ((rooms.view && rooms.view.waiting) || []).find((person) => person.user_id === userId) || null;
  }

  async function act(name, payload) {
    try {
      return await request(name, { case_id: caseId, ...payload });
    } catch (error) {
      showError(byId("page-error"), error);
      return null;
    }
  }

  function statusOf(person) {
    return rooms.status.get(person.user_id) || person;
  }

  // --- what everyone sees -------------------------------------------------------------

  function setState(view) {
    if (!view || typeof view.seq !== "number" || view.seq <= rooms.seq) {
      return;
    }
    const before = rooms.view && rooms.view.you.room_id;
    rooms.seq = view.seq;
    rooms.view = view;
    for (const room of view.rooms) {
      for (const person of room.occupants) {
        if (person.online) {
          rooms.status.set(person.user_id, person);
        } else {
          rooms.status.delete(person.user_id);
        }
      }
    }
    renderBanner();
    renderPanel();
    if (before !== view.you.room_id) {
      loadBoard();
    }
    onChange();
  }

  function renderBanner() {
    const room = myRoom();
    const waiting = rooms.view && rooms.view.you.room_id === "waiting";
    byId("room-banner").hidden = !rooms.view;
    byId("room-name").textContent = room ? room.name : waiting ? "Waiting area" : "—";
    renderOccupants();
    byId("waiting-note").hidden = !waiting;
    byId("ask").hidden = !rooms.view || isNeutral();
    byId("panel-toggle").hidden = !isNeutral();
    const timer = room && room.timer_ends_at;
    byId("room-timer").hidden = !timer;
    if (timer) {
      byId("room-timer").dataset.endsAt = String(localTime(timer));
      tick();
    }
    byId("share-screen").disabled = !room || !room.sharing_allowed;
    byId("board-toggle").disabled = !room;
  }

  function renderOccupants() {
    const room = myRoom();
    byId("room-occupants").replaceChildren(
      ...(room ? room.occupants : []).map((person) =>
        el(
          "li",
          { dataset: { testid: "room-occupant", user: person.user_id }, class: person.online ? "" : "offline" },
          el("span", {}, person.display_name),
          el("span", { class: "tag" }, roleName(person.role)),
          person.online ? el("span", { class: "states" }, stateBadges(statusOf(person), { speaking: statusOf(person).speaking })) : "(away)",
        ),
      ),
    );
  }

  /** A server instant as this browser's clock reads it. */
  function localTime(serverSeconds) {
    const skew = Date.now() / 1000 - rooms.view.server_time;
    return serverSeconds + skew;
  }

  function left(endsAt) {
    const seconds = Math.max(0, Math.round(endsAt - Date.now() / 1000));
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }

  function tick() {
    const node = byId("room-timer");
    const endsAt = Number(node.dataset.endsAt || 0);
    if (!node.hidden && endsAt) {
      node.textContent = `Time left in this room: ${left(endsAt)}`;
    }
    for (const badge of document.querySelectorAll("[data-testid=card-timer]")) {
      badge.textContent = `${left(Number(badge.dataset.endsAt))} left`;
    }
    for (const age of document.querySelectorAll("[data-asked-at]")) {
      const minutes = Math.floor((Date.now() / 1000 - Number(age.dataset.askedAt)) / 60);
      age.textContent = minutes < 1 ? "just now" : `${minutes} min ago`;
    }
  }
  setInterval(tick, 1000);

  function addMessage(kind, text) {
    const list = byId("messages");
    list.hidden = false;
    const dismiss = el("button", { type: "button", "aria-label": "Dismiss this message" }, "×");
    const item = el("li", { class: kind, dataset: { testid: kind } }, el("span", {}, text), dismiss);
    dismiss.addEventListener("click", () => {
      item.remove();
      list.hidden = list.children.length === 0;
    });
    list.prepend(item);
    while (list.children.length > MAX_MESSAGES) {
      list.lastElementChild.remove();
    }
  }

  // --- the whiteboard ---------------------------------------------------------------

  const canvas = byId("board");
  const context = canvas.getContext("2d");

  function drawStroke(stroke) {
    const { width, height } = canvas;
    context.strokeStyle = stroke.color;
    context.lineWidth = (stroke.width * width) / 1000;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    stroke.points.forEach(([x, y], index) => {
      if (index === 0) {
        context.moveTo(x * width, y * height);
      } else {
        context.lineTo(x * width, y * height);
      }
    });
    if (stroke.points.length === 1) {
      const [x, y] = stroke.points[0];
      context.lineTo(x * width + 0.1, y * height);
    }
    context.stroke();
  }

  function redraw() {
    context.clearRect(0, 0, canvas.width, canvas.height);
    rooms.strokes.forEach(drawStroke);
  }

  async function loadBoard() {
    rooms.strokes = [];
    redraw();
    if (!myRoom()) {
      return;
    }
    try {
      const reply = await request("live.board", { case_id: caseId });
      if (rooms.view && reply.room_id === rooms.view.you.room_id) {
        rooms.strokes = reply.strokes;
        redraw();
      }
    } catch {
      // not in a room yet; the next state brings the board
    }
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    const clamp = (value) => Math.min(1, Math.max(0, value));
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  }

  canvas.addEventListener("pointerdown", (event) => {
    rooms.drawing = { points: [point(event)], color: byId("board-color").value, width: 3 };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (rooms.drawing && rooms.drawing.points.length < 500) {
      rooms.drawing.points.push(point(event));
      drawStroke({ ...rooms.drawing, points: rooms.drawing.points.slice(-2) });
    }
  });
  canvas.addEventListener("pointerup", () => {
    const stroke = rooms.drawing;
    rooms.drawing = null;
    if (stroke) {
      act("live.board.stroke", stroke);
    }
  });
  byId("board-clear").addEventListener("click", () => act("live.board.clear", {}));

  // --- the mediator's console -------------------------------------------------------

  function roomOptions(selected) {
    return rooms.view.rooms.map((room) =>
      el("option", { value: room.id, selected: room.id === selected }, room.name),
    );
  }

  function personRow(person, room) {
    const you = person.user_id === rooms.view.you.user_id;
    const pick = el(
      "button",
      {
        type: "button",
        class: "person-pick",
        "aria-pressed": String(rooms.picked.has(person.user_id)),
        dataset: { pick: person.user_id, testid: "pick-person" },
      },
      you ? `${person.display_name} (you)` : person.display_name,
    );
    const states = el("span", { class: "states", dataset: { testid: "person-states" } });
    const row = el(
      "li",
      {
        class: person.online ? "person" : "person offline",
        draggable: "true",
        dataset: { testid: "panel-occupant", user: person.user_id, room: room.id },
      },
      pick,
      el("span", { class: "tag" }, roleName(person.role)),
      states,
      // a neutral cannot remove themself; every other row can be removed, after a confirmation
      you
        ? null
        : el(
            "button",
            {
              type: "button",
              class: "remove-person",
              dataset: { remove: person.user_id, testid: "remove-person" },
              "aria-label": `Remove ${person.display_name}`,
            },
            "Remove",
          ),
    );
    showPersonState(row, person);
    return row;
  }

  function showPersonState(row, person) {
    const states = row.querySelector("[data-testid=person-states]");
    if (!person.online) {
      states.replaceChildren(el("span", { class: "state" }, "Away"));
      return;
    }
    const status = statusOf(person);
    states.replaceChildren(...stateBadges(status, { speaking: status.speaking }));
  }

  function speakingLine(room) {
    const talking = room.occupants.filter((person) => person.online && statusOf(person).speaking && !statusOf(person).muted);
    return talking.length
      ? { text: `Speaking: ${talking.map((person) => person.display_name).join(", ")}`, quiet: false }
      : { text: room.occupants.some((person) => person.online) ? "Nobody is speaking" : "Empty", quiet: true };
  }

  function roomCard(room, typed) {
    const mine = room.id === rooms.view.you.room_id;
    const heading = `room-card-${room.id}`;
    const line = speakingLine(room);
    const actions = [];
    if (!mine) {
      actions.push(
        el("button", { type: "button", dataset: { action: "visit", room: room.id, testid: "visit-room" } }, "Visit room"),
      );
    }
    if (!room.main) {
      actions.push(
        el("label", { class: "visually-hidden", for: `minutes-${room.id}` }, `Minutes for ${room.name}`),
        el("input", {
          type: "number",
          id: `minutes-${room.id}`,
          min: "0.1",
          max: "1440",
          step: "any",
          value: typed.get(room.id) ?? "10",
          class: "minutes",
        }),
        el("button", { type: "button", dataset: { action: "timer", room: room.id } }, "Start timer"),
      );
      if (room.timer_ends_at) {
        actions.push(el("button", { type: "button", dataset: { action: "extend", room: room.id } }, "+5 min"));
      }
    }
    const more = [
      el("button", { type: "button", dataset: { action: "rename", room: room.id } }, "Rename"),
      el("button", { type: "button", dataset: { action: "lock", room: room.id } }, room.locked ? "Unlock" : "Lock"),
      el(
        "button",
        { type: "button", dataset: { action: "sharing", room: room.id } },
        room.sharing_allowed ? "Turn screen sharing off" : "Allow screen sharing",
      ),
    ];
    if (!room.main) {
      more.push(
        el("button", { type: "button", class: "danger", dataset: { action: "close", room: room.id } }, "Close room"),
      );
    }
    const badges = [];
    if (mine) {
      badges.push(el("span", { class: "card-badge", dataset: { testid: "you-are-here" } }, "You are here"));
    }
    if (room.locked) {
      badges.push(el("span", { class: "card-badge" }, "Locked"));
    }
    if (!room.sharing_allowed) {
      badges.push(el("span", { class: "card-badge" }, "No screen sharing"));
    }
    if (room.timer_ends_at) {
      const endsAt = localTime(room.timer_ends_at);
      badges.push(
        el(
          "span",
          { class: "card-badge card-timer", dataset: { testid: "card-timer", endsAt: String(endsAt) } },
          `${left(endsAt)} left`,
        ),
      );
    }
    return el(
      "section",
      {
        class: mine ? "room-card mine" : "room-card",
        "aria-labelledby": heading,
        dataset: { testid: "room-card", room: room.id },
      },
      el(
        "div",
        { class: "room-card-head" },
        el("h3", { id: heading }, el("span", { dataset: { testid: "room-card-name" } }, room.name)),
        badges,
      ),
      el(
        "p",
        { class: line.quiet ? "card-speaking quiet-room" : "card-speaking", title: line.text, dataset: { testid: "card-speaking" } },
        line.text,
      ),
      el(
        "ul",
        { class: "occupants", "aria-label": `People in ${room.name}` },
        room.occupants.map((person) => personRow(person, room)),
      ),
      el("div", { class: "room-actions" }, actions),
      el(
        "details",
        { class: "room-more" },
        el("summary", {}, "Room settings"),
        el("div", { class: "room-actions" }, more),
      ),
    );
  }

  function renderPanel() {
    const panel = byId("panel");
    if (!isNeutral()) {
      panel.hidden = true;
      return;
    }
    if (rooms.dragging) {
      rooms.stale = true; // rebuilt when the drag ends: a rebuilt card would cancel it
      return;
    }
    const view = rooms.view;
    // Cards are rebuilt on every state: keep the minutes the mediator typed meanwhile, the
    // settings they opened and where the focus was.
    const typed = new Map(
      [...byId("panel-rooms").querySelectorAll(".room-card .minutes")].map((input) => [
        input.closest(".room-card").dataset.room,
        input.value,
      ]),
    );
    const opened = new Set(
      [...byId("panel-rooms").querySelectorAll(".room-more[open]")].map((details) => details.closest(".room-card").dataset.room),
    );
    const focused = document.activeElement && byId("panel-rooms").contains(document.activeElement) ? focusKey(document.activeElement) : null;
    const known = new Set([...view.rooms.flatMap((room) => room.occupants), ...(view.waiting || [])].map((p) => p.user_id));
    for (const picked of [...rooms.picked]) {
      if (!known.has(picked)) {
        rooms.picked.delete(picked);
      }
    }
    const cards = view.rooms.map((room) => roomCard(room, typed));
    for (const card of cards) {
      if (opened.has(card.dataset.room)) {
        card.querySelector(".room-more").open = true;
      }
    }
    byId("panel-rooms").replaceChildren(...cards);
    if (focused) {
      const again = byId("panel-rooms").querySelector(focused);
      if (again) {
        again.focus();
      }
    }
    byId("panel-waiting").replaceChildren(
      ...(view.waiting || []).map((person) =>
        el(
          "li",
          { class: "person", dataset: { testid: "waiting-person" } },
          `${person.display_name} `,
          el("button", { type: "button", dataset: { admit: person.user_id } }, "Admit"),
        ),
      ),
    );
    if (!(view.waiting || []).length) {
      byId("panel-waiting").replaceChildren(el("li", { class: "hint" }, "Nobody is waiting."));
    }
    byId("panel-target").replaceChildren(...roomOptions(byId("panel-target").value || "main"));
    renderSelection();
    renderRequests();
  }

  /** A selector finding the same control in the rebuilt cards. */
  function focusKey(node) {
    const card = node.closest(".room-card");
    const room = card ? `[data-room="${card.dataset.room}"]` : "";
    for (const name of ["pick", "remove", "action"]) {
      if (node.dataset[name]) {
        return `.room-card${room} [data-${name}="${node.dataset[name]}"]`;
      }
    }
    return null;
  }

  function renderSelection() {
    const count = rooms.picked.size;
    byId("selection-bar").hidden = count === 0;
    byId("selection-count").textContent = count === 1 ? "1 person selected" : `${count} people selected`;
    byId("panel-swap").hidden = count !== 2;
  }

  function renderRequests() {
    const list = byId("request-list");
    const requests = [...rooms.requests.values()];
    byId("request-count").textContent = String(requests.length);
    byId("no-requests").hidden = requests.length > 0;
    list.replaceChildren(
      ...requests.map((asked) => {
        const here = rooms.view && asked.room_id === rooms.view.you.room_id;
        const waiting = asked.room_id === "waiting" || !asked.room_id;
        return el(
          "li",
          { dataset: { testid: "request", user: asked.user_id } },
          el(
            "span",
            { class: "who" },
            el("strong", {}, asked.display_name),
            el("span", {}, `in ${asked.room_name}`),
            el("span", { class: "hint", dataset: { askedAt: String(asked.localAt) } }, "just now"),
          ),
          asked.text ? el("span", { class: "request-text" }, `“${asked.text}”`) : null,
          waiting
            ? el("button", { type: "button", dataset: { admit: asked.user_id } }, "Admit")
            : here
              ? el("span", { class: "card-badge" }, "In your room")
              : el(
                  "button",
                  { type: "button", dataset: { action: "visit", room: asked.room_id, testid: "visit-request" } },
                  `Visit ${asked.room_name}`,
                ),
          el(
            "button",
            { type: "button", class: "quiet", dataset: { answered: asked.user_id, testid: "request-done" } },
            "Done",
          ),
        );
      }),
    );
    tick();
  }

  function updatePerson(person) {
    rooms.status.set(person.user_id, person);
    if (!person.hand) {
      rooms.requests.delete(person.user_id);
    }
    if (rooms.view && person.user_id === rooms.view.you.user_id && rooms.hand !== person.hand) {
      setHand(person.hand);
    }
    if (!rooms.view) {
      return;
    }
    renderOccupants();
    if (!isNeutral()) {
      return;
    }
    // in place: a rebuilt card would end a drag that is under way
    for (const row of byId("panel-rooms").querySelectorAll(`[data-testid=panel-occupant][data-user="${person.user_id}"]`)) {
      const known = personById(person.user_id);
      if (known) {
        showPersonState(row, known);
      }
    }
    for (const card of byId("panel-rooms").querySelectorAll("[data-testid=room-card]")) {
      const room = roomById(card.dataset.room);
      if (room) {
        const line = speakingLine(room);
        const node = card.querySelector("[data-testid=card-speaking]");
        node.textContent = line.text;
        node.title = line.text;
        node.classList.toggle("quiet-room", line.quiet);
      }
    }
    renderRequests();
  }

  function setHand(raised) {
    rooms.hand = raised;
    const ask = byId("ask");
    ask.setAttribute("aria-pressed", String(raised));
    ask.textContent = raised ? "Lower hand" : "Ask the mediator";
    onChange();
  }

  async function moveTo(userIds, roomId) {
    if (userIds.length === 1) {
      return act("live.move", { user_id: userIds[0], room_id: roomId });
    }
    return act("live.move_many", { moves: Object.fromEntries(userIds.map((user) => [user, roomId])) });
  }

  // clicks in the console
  byId("panel").addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) {
      return;
    }
    const { action, room, admit, remove, pick, answered } = button.dataset;
    if (pick) {
      if (rooms.picked.has(pick)) {
        rooms.picked.delete(pick);
      } else {
        rooms.picked.add(pick);
      }
      button.setAttribute("aria-pressed", String(rooms.picked.has(pick)));
      renderSelection();
    } else if (admit) {
      await act("live.admit", { user_id: admit });
    } else if (answered) {
      rooms.requests.delete(answered);
      renderRequests();
      await act("live.hand.lower", { user_id: answered });
    } else if (remove) {
      const person = personById(remove);
      const name = person ? person.display_name : "this person";
      const sure = await confirmAction({
        title: `Remove ${name}?`,
        text: `${name} leaves the session at once and waits in the waiting area until you admit them again.`,
        confirm: "Remove",
      });
      if (sure) {
        await act("live.remove", { user_id: remove });
      }
    } else if (action === "visit") {
      await act("live.move", { user_id: rooms.view.you.user_id, room_id: room });
    } else if (action === "timer") {
      const minutes = Number(button.parentElement.querySelector(".minutes").value || 10);
      await act("live.timer.start", { room_id: room, seconds: Math.max(1, Math.round(minutes * 60)) });
    } else if (action === "extend") {
      await act("live.timer.extend", { room_id: room, seconds: 300 });
    } else if (action === "close") {
      const current = roomById(room);
      const people = current ? current.occupants.length : 0;
      const sure =
        people === 0 ||
        (await confirmAction({
          title: `Close ${current.name}?`,
          text: `${people === 1 ? "The person" : `The ${people} people`} in ${current.name} return to the main room, and its whiteboard is cleared.`,
          confirm: "Close room",
        }));
      if (sure) {
        await act("live.room.close", { room_id: room });
      }
    } else if (action === "rename") {
      renameRoom(room);
    } else if (action === "lock") {
      const current = roomById(room);
      await act("live.room.lock", { room_id: room, locked: !current.locked });
    } else if (action === "sharing") {
      const current = roomById(room);
      await act("live.room.sharing", { room_id: room, allowed: !current.sharing_allowed });
    }
  });

  function renameRoom(roomId) {
    const room = roomById(roomId);
    const dialog = byId("rename-dialog");
    const field = byId("rename-name");
    field.value = room ? room.name : "";
    dialog.dataset.room = roomId;
    dialog.showModal();
    field.select();
  }
  byId("rename-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const dialog = byId("rename-dialog");
    const name = byId("rename-name").value.trim();
    dialog.close();
    if (name) {
      await act("live.room.rename", { room_id: dialog.dataset.room, name });
    }
  });
  byId("rename-cancel").addEventListener("click", () => byId("rename-dialog").close());

  // drag and drop: a person's row onto another room's card
  const cardsArea = byId("panel-rooms");
  cardsArea.addEventListener("dragstart", (event) => {
    const row = event.target.closest && event.target.closest("[data-testid=panel-occupant]");
    if (!row) {
      return;
    }
    const moving = rooms.picked.has(row.dataset.user) ? [...rooms.picked] : [row.dataset.user];
    event.dataTransfer.setData(DRAG_TYPE, JSON.stringify(moving));
    event.dataTransfer.setData("text/plain", row.querySelector(".person-pick").textContent);
    event.dataTransfer.effectAllowed = "move";
    row.classList.add("dragging");
    rooms.dragging = true;
  });
  cardsArea.addEventListener("dragend", (event) => {
    const row = event.target.closest && event.target.closest("[data-testid=panel-occupant]");
    if (row) {
      row.classList.remove("dragging");
    }
    rooms.dragging = false;
    for (const card of cardsArea.querySelectorAll(".drop-target")) {
      card.classList.remove("drop-target");
    }
    if (rooms.stale) {
      rooms.stale = false;
      renderPanel();
    }
  });
  cardsArea.addEventListener("dragover", (event) => {
    const card = event.target.closest && event.target.closest("[data-testid=room-card]");
    if (card && event.dataTransfer.types.includes(DRAG_TYPE)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      for (const other of cardsArea.querySelectorAll(".drop-target")) {
        if (other !== card) {
          other.classList.remove("drop-target");
        }
      }
      card.classList.add("drop-target");
    }
  });
  cardsArea.addEventListener("dragleave", (event) => {
    const card = event.target.closest && event.target.closest("[data-testid=room-card]");
    if (card && !card.contains(event.relatedTarget)) {
      card.classList.remove("drop-target");
    }
  });
  cardsArea.addEventListener("drop", async (event) => {
    const card = event.target.closest && event.target.closest("[data-testid=room-card]");
    const data = event.dataTransfer.getData(DRAG_TYPE);
    if (!card || !data) {
      return;
    }
    event.preventDefault();
    card.classList.remove("drop-target");
    let moving;
    try {
      moving = JSON.parse(data).filter((user) => typeof user === "string");
    } catch {
      return;
    }
    rooms.dragging = false;
    if (moving.length && (await moveTo(moving, card.dataset.room))) {
      for (const user of moving) {
        rooms.picked.delete(user);
      }
      renderPanel();
    }
  });

  // A form is emptied when it is sent, not when the reply comes: the live.state showing
  // the result arrives before the reply, and the next text may be typed in between.
  async function sendField(field, send) {
    const text = field.value.trim();
    if (!text) {
      return;
    }
    field.value = "";
    if (!(await send(text)) && !field.value) {
      field.value = text; // refused: give it back to correct
    }
  }

  byId("panel-create").addEventListener("submit", (event) => {
    event.preventDefault();
    sendField(byId("panel-room-name"), (name) => act("live.room.create", { name }));
  });
  byId("panel-move").addEventListener("click", async () => {
    const picked = [...rooms.picked];
    if (picked.length && (await moveTo(picked, byId("panel-target").value))) {
      rooms.picked.clear();
      renderPanel();
    }
  });
  byId("panel-swap").addEventListener("click", async () => {
    const picked = [...rooms.picked];
    if (picked.length === 2 && (await act("live.swap", { first: picked[0], second: picked[1] }))) {
      rooms.picked.clear();
      renderPanel();
    }
  });
  byId("panel-clear-selection").addEventListener("click", () => {
    rooms.picked.clear();
    renderPanel();
  });
  byId("panel-bring-back").addEventListener("click", () => act("live.bring_back", {}));
  byId("panel-broadcast").addEventListener("submit", (event) => {
    event.preventDefault();
    sendField(byId("broadcast-text"), (text) => act("live.broadcast", { text }));
  });
  byId("ask").addEventListener("click", async () => {
    if (rooms.hand) {
      setHand(false);
      sendStatus({ hand: false });
    } else if (await act("live.ask", { text: "" })) {
      setHand(true);
      addMessage("notice", "The mediator has been asked to join you.");
    }
  });

  // --- the socket's events ----------------------------------------------------------

  function bind(socket) {
    socket.on("live.state", setState);
    socket.on("live.person", updatePerson);
    socket.on("live.broadcast", (message) => addMessage("broadcast", `${message.from}: ${message.text}`));
    socket.on("live.timer_warning", (warning) =>
      addMessage("timer-warning", `${warning.room_name} closes in less than a minute.`),
    );
    socket.on("live.asked", (asked) => {
      rooms.requests.delete(asked.user_id); // a second request goes to the end of the queue
      rooms.requests.set(asked.user_id, { ...asked, localAt: Date.now() / 1000 });
      renderRequests();
      addMessage("asked", `${asked.display_name} asks for you in ${asked.room_name}${asked.text ? `: ${asked.text}` : ""}.`);
    });
    socket.on("live.board.stroke", (message) => {
      if (rooms.view && message.room_id === rooms.view.you.room_id) {
        rooms.strokes.push(message.stroke);
        drawStroke(message.stroke);
      }
    });
    socket.on("live.board.cleared", () => {
      rooms.strokes = [];
      redraw();
    });
  }

  return {
    bind,
    setState,
    isNeutral,
    redrawBoard: redraw,
    get hand() {
      return rooms.hand;
    },
    get view() {
      return rooms.view;
    },
  };
}
