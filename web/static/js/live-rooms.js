// The live rooms on the live page: which room you are in and who is with you, the
// mediator's broadcasts and timer warnings, "ask the mediator", the room's whiteboard,
// and for a neutral the panel that runs the rooms (see docs/signaling.md, "Live rooms").
// live.js owns the socket and the media; it hands this module the socket's events.

import { byId, el, roleName } from "./dom.js";
import { showError } from "./feedback.js";

const NEUTRAL_ROLES = ["neutral", "co_neutral"];

export function liveRooms({ caseId, request }) {
  const rooms = { view: null, seq: 0, strokes: [], drawing: null, picked: new Set() };

  function isNeutral() {
    return rooms.view && NEUTRAL_ROLES.includes(rooms.view.you.role);
  }

  function myRoom() {
    const view = rooms.view;
    if (!view) {
      return null;
    }
    return view.rooms.find((room) => room.id === view.you.room_id) || null;
  }

  async function act(name, payload) {
    try {
      return await request(name, { case_id: caseId, ...payload });
    } catch (error) {
      showError(byId("page-error"), error);
      return null;
    }
  }

  // --- what everyone sees -------------------------------------------------------------

  function setState(view) {
    if (!view || typeof view.seq !== "number" || view.seq <= rooms.seq) {
      return;
    }
    const before = rooms.view && rooms.view.you.room_id;
    rooms.seq = view.seq;
    rooms.view = view;
    renderBanner();
    renderPanel();
    if (before !== view.you.room_id) {
      loadBoard();
    }
  }

  function renderBanner() {
    const room = myRoom();
    const waiting = rooms.view && rooms.view.you.room_id === "waiting";
    byId("room-banner").hidden = !rooms.view;
    byId("room-name").textContent = room ? room.name : waiting ? "Waiting area" : "—";
    byId("room-occupants").replaceChildren(
      ...(room ? room.occupants : []).map((person) =>
        el(
          "li",
          { dataset: { testid: "room-occupant", user: person.user_id }, class: person.online ? "" : "offline" },
          person.display_name,
          " ",
          el("span", { class: "tag" }, roleName(person.role)),
        ),
      ),
    );
    byId("waiting-note").hidden = !waiting;
    byId("ask").hidden = !rooms.view || isNeutral();
    const timer = room && room.timer_ends_at;
    byId("room-timer").hidden = !timer;
    if (timer) {
      const skew = Date.now() / 1000 - rooms.view.server_time;
      byId("room-timer").dataset.endsAt = String(timer + skew);
      tick();
    }
    byId("share-screen").disabled = !room || !room.sharing_allowed;
    byId("board-section").hidden = !room;
  }

  function tick() {
    const node = byId("room-timer");
    const endsAt = Number(node.dataset.endsAt || 0);
    if (node.hidden || !endsAt) {
      return;
    }
    const left = Math.max(0, Math.round(endsAt - Date.now() / 1000));
    node.textContent = `Time left in this room: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }
  setInterval(tick, 1000);

  function addMessage(kind, text) {
    const list = byId("messages");
    list.hidden = false;
    list.prepend(el("li", { class: kind, dataset: { testid: kind } }, text));
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

  // --- the mediator's panel ---------------------------------------------------------

  function roomOptions(selected) {
    return rooms.view.rooms.map((room) =>
      el("option", { value: room.id, selected: room.id === selected }, room.name),
    );
  }

  function renderPanel() {
    const panel = byId("panel");
    panel.hidden = !isNeutral();
    if (!isNeutral()) {
      return;
    }
    const view = rooms.view;
    // Cards are rebuilt on every state: keep the minutes the mediator typed meanwhile.
    const typed = new Map(
      [...byId("panel-rooms").querySelectorAll(".room-card .minutes")].map((input) => [
        input.closest(".room-card").dataset.room,
        input.value,
      ]),
    );
    const cards = view.rooms.map((room) => {
      const occupants = room.occupants.map((person) => {
        const select = el(
          "select",
          { "aria-label": `Move ${person.display_name}`, dataset: { testid: "move-select", user: person.user_id } },
          roomOptions(room.id),
        );
        select.addEventListener("change", () => act("live.move", { user_id: person.user_id, room_id: select.value }));
        return el(
          "li",
          { dataset: { testid: "panel-occupant", user: person.user_id }, class: person.online ? "" : "offline" },
          el("input", {
            type: "checkbox",
            class: "pick",
            value: person.user_id,
            checked: rooms.picked.has(person.user_id),
            "aria-label": `Select ${person.display_name}`,
          }),
          ` ${person.display_name} `,
          el("span", { class: "tag" }, roleName(person.role)),
          " ",
          select,
          el("button", { type: "button", class: "link", dataset: { remove: person.user_id } }, "Remove"),
        );
      });
      const controls = [];
      if (!room.main) {
        controls.push(
          el("input", {
            type: "number",
            min: "1",
            max: "1440",
            value: typed.get(room.id) ?? "10",
            class: "minutes",
            "aria-label": "Minutes",
          }),
          el("button", { type: "button", dataset: { action: "timer", room: room.id } }, "Start timer"),
          el("button", { type: "button", dataset: { action: "extend", room: room.id } }, "+5 min"),
          el("button", { type: "button", dataset: { action: "close", room: room.id } }, "Close room"),
        );
      }
      controls.push(
        el("button", { type: "button", dataset: { action: "lock", room: room.id } }, room.locked ? "Unlock" : "Lock"),
        el(
          "button",
          { type: "button", dataset: { action: "sharing", room: room.id } },
          room.sharing_allowed ? "Disable screen sharing" : "Enable screen sharing",
        ),
      );
      return el(
        "section",
        { class: "room-card", dataset: { testid: "room-card", room: room.id } },
        el(
          "h3",
          {},
          el("span", { dataset: { testid: "room-card-name" } }, room.name),
          room.locked ? " 🔒" : "",
          room.timer_ends_at ? " ⏱" : "",
        ),
        el("ul", { class: "occupants" }, occupants),
        el("div", { class: "room-actions" }, controls),
      );
    });
    byId("panel-rooms").replaceChildren(...cards);
    byId("panel-waiting").replaceChildren(
      ...(view.waiting || []).map((person) =>
        el(
          "li",
          { dataset: { testid: "waiting-person" } },
          `${person.display_name} `,
          el("button", { type: "button", dataset: { admit: person.user_id } }, "Admit"),
        ),
      ),
    );
    byId("panel-target").replaceChildren(...roomOptions(byId("panel-target").value || "main"));
  }

  byId("panel").addEventListener("change", (event) => {
    if (event.target.classList.contains("pick")) {
      if (event.target.checked) {
        rooms.picked.add(event.target.value);
      } else {
        rooms.picked.delete(event.target.value);
      }
    }
  });
  byId("panel").addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) {
      return;
    }
    const { action, room, admit, remove } = button.dataset;
    if (admit) {
      await act("live.admit", { user_id: admit });
    } else if (remove) {
      await act("live.remove", { user_id: remove });
    } else if (action === "timer") {
      const minutes = Number(button.parentElement.querySelector(".minutes").value || 10);
      await act("live.timer.start", { room_id: room, seconds: Math.round(minutes * 60) });
    } else if (action === "extend") {
      await act("live.timer.extend", { room_id: room, seconds: 300 });
    } else if (action === "close") {
      await act("live.room.close", { room_id: room });
    } else if (action === "lock") {
      const current = rooms.view.rooms.find((candidate) => candidate.id === room);
      await act("live.room.lock", { room_id: room, locked: !current.locked });
    } else if (action === "sharing") {
      const current = rooms.view.rooms.find((candidate) => candidate.id === room);
      await act("live.room.sharing", { room_id: room, allowed: !current.sharing_allowed });
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
    if (picked.length) {
      const target = byId("panel-target").value;
      if (await act("live.move_many", { moves: Object.fromEntries(picked.map((user) => [user, target])) })) {
        rooms.picked.clear();
        renderPanel();
      }
    }
  });
  byId("panel-swap").addEventListener("click", async () => {
    const picked = [...rooms.picked];
    if (picked.length === 2) {
      if (await act("live.swap", { first: picked[0], second: picked[1] })) {
        rooms.picked.clear();
        renderPanel();
      }
    } else {
      showError(byId("page-error"), new Error("Select exactly two people to exchange."));
    }
  });
  byId("panel-bring-back").addEventListener("click", () => act("live.bring_back", {}));
  byId("panel-broadcast").addEventListener("submit", (event) => {
    event.preventDefault();
    sendField(byId("broadcast-text"), (text) => act("live.broadcast", { text }));
  });
  byId("ask").addEventListener("click", async () => {
    if (await act("live.ask", { text: "" })) {
      addMessage("notice", "The mediator has been asked to join you.");
    }
  });

  // --- the socket's events ----------------------------------------------------------

  function bind(socket) {
    socket.on("live.state", setState);
    socket.on("live.broadcast", (message) => addMessage("broadcast", `${message.from}: ${message.text}`));
    socket.on("live.timer_warning", (warning) =>
      addMessage("timer-warning", `${warning.room_name} closes in less than a minute.`),
    );
    socket.on("live.asked", (asked) =>
      addMessage("asked", `${asked.display_name} asks for you in ${asked.room_name}${asked.text ? `: ${asked.text}` : ""}.`),
    );
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

  return { bind, setState, get view() {
    return rooms.view;
  } };
}
