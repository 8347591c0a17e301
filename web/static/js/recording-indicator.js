// The recording indicator of a live room: the server sends `recording.state` on the /media
// socket when the participant's room starts or stops being recorded, and when they enter
// a recorded room (before any of their media is recorded). See docs/recorder.md.
//
//   import { showRecordingIndicator } from "./recording-indicator.js";
//   showRecordingIndicator(mediaSocket, document.getElementById("recording-indicator-slot"));

import { el } from "./dom.js";

/** Keeps a "Recording" notice in `container` in line with the room's recording state. */
export function showRecordingIndicator(socket, container) {
  const notice = el(
    "p",
    { class: "alert recording-indicator", role: "status", dataset: { testid: "recording-indicator" }, hidden: true },
    "● This room is being recorded.",
  );
  container.append(notice);
  socket.on("recording.state", (state) => {
    notice.hidden = !(state && state.recording);
  });
  // A new connection (reconnect, new live session) is told again if its room is recorded.
  socket.on("disconnect", () => {
    notice.hidden = true;
  });
  return notice;
}
