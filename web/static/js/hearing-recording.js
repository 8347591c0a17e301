// The neutral's control for recording a live room into this space (socket.io /recording;
// see docs/recorder.md). Everybody in the room is told by the server while it records;
// when it stops, the recordings and their timeline appear in the space's files.

import { byId, el } from "./dom.js";
import { io } from "/static/vendor/socket.io.esm.min.js";
import { call } from "./space-socket.js";

/** Shows and drives the "Recording of a live room" card; ui holds its elements. */
export function setupHearingRecording(where, ui, { onError, onClear }) {
  const recorded = new Map(); // room id -> recording.state
  let rooms = [];
  const socket = io("/recording", { transports: ["websocket"], withCredentials: true });

  function render() {
    const chosen = ui.room.value;
    ui.room.replaceChildren(...rooms.map((room) => el("option", { value: room.id }, recorded.has(room.id) ? `${room.name} (recording)` : room.name)));
    if (rooms.some((room) => room.id === chosen)) {
      ui.room.value = chosen;
    }
    const state = recorded.get(ui.room.value);
    ui.toggle.textContent = state ? "Stop recording" : "Start recording";
    ui.state.textContent = state ? "Recording" : "Not recording";
    ui.state.dataset.state = state ? "recording" : "idle";
  }

  socket.on("connect", async () => {
    try {
      const answer = await call(socket, "recording.watch", { case_id: where.case_id });
      rooms = answer.rooms || [];
      recorded.clear();
      for (const state of answer.recordings) {
        recorded.set(state.room_id, state);
      }
      ui.card.hidden = false;
      render();
    } catch (error) {
      onError(error);
    }
  });
  socket.on("recording.state", (state) => {
    if (state.case_id !== where.case_id) {
      return;
    }
    if (state.recording) {
      recorded.set(state.room_id, state);
    } else {
      recorded.delete(state.room_id);
    }
    render();
  });
  ui.room.addEventListener("change", render);
  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    onClear();
    const roomId = ui.room.value;
    ui.toggle.disabled = true;
    try {
      if (recorded.has(roomId)) {
        ui.state.textContent = "Saving…";
        await call(socket, "hearing.stop", { case_id: where.case_id, room_id: roomId });
        recorded.delete(roomId);
      } else {
        const state = await call(socket, "hearing.start", { ...where, room_id: roomId });
        recorded.set(roomId, state);
      }
    } catch (error) {
      onError(error);
    } finally {
      ui.toggle.disabled = false;
      render();
    }
  });
}

export function hearingElements() {
  return {
    card: byId("hearing-recording"),
    form: byId("hearing-form"),
    room: byId("hearing-room"),
    toggle: byId("hearing-toggle"),
    state: byId("hearing-state"),
  };
}
