// Recording a video message in a space (see docs/recorder.md): camera and microphone go to
// the server on a peer connection of their own, over the /recording namespace; the server
// records them and enforces the maximum length. Once stopped, the server holds the
// recording while its author plays it back (the browser's own copy of the same camera
// stream, kept by a MediaRecorder) and then sends it, records again or discards it.

import { io } from "/static/vendor/socket.io.esm.min.js";
import { call } from "./space-socket.js";

const GATHER_TIMEOUT_MS = 3000;

function waitForCandidates(pc) {
  if (pc.iceGatheringState === "complete") {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") {
        done();
      }
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** "m:ss" for a number of seconds. */
export function clockText(seconds) {
  const whole = Math.max(0, Math.round(seconds || 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function preferVp8(transceiver) {
  // VP8 is recorded as WebM, which every browser plays; H.264 would be Matroska.
  const capabilities = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities ? RTCRtpReceiver.getCapabilities("video") : null;
  if (!capabilities || !transceiver.setCodecPreferences) {
    return;
  }
  const codecs = capabilities.codecs.filter((codec) => /^video\/(vp8|rtx)$/i.test(codec.mimeType));
  if (codecs.some((codec) => /vp8/i.test(codec.mimeType))) {
    try {
      transceiver.setCodecPreferences(codecs);
    } catch {
      // The browser keeps its own order; the server records H.264 too.
    }
  }
}

/**
 * Wires the record and stop buttons of a space page.
 *
 * where: {case_id, space_id}; ui: {record, stop, status, preview, review, send, rerecord,
 * discard}; onMessage(message) gets the posted video message (or the message saying the
 * recording failed); onError(error).
 */
export function setupVideoMessages(where, ui, { onMessage, onError }) {
  const state = {
    socket: null,
    iceServers: [],
    stream: null,
    pc: null,
    recordingId: null,
    timer: null,
    maxSeconds: 0,
    busy: false,
    local: null, // the MediaRecorder keeping the browser's copy for the review
    localCopy: null, // a promise of that copy (a Blob) once the recording stopped
    held: null, // the recording id the server holds for review
    reviewUrl: null,
  };

  function show(text) {
    ui.status.textContent = text;
  }

  async function socket() {
    if (state.socket && state.socket.connected) {
      return state.socket;
    }
    const connection = (state.socket = state.socket || io("/recording", { transports: ["websocket"], withCredentials: true }));
    connection.off("video.ended");
    connection.on("video.ended", (outcome) => {
      if (outcome && outcome.recording_id === state.recordingId) {
        finish(outcome);
      }
    });
    if (!connection.connected) {
      await new Promise((resolve, reject) => {
        connection.once("connect", resolve);
        connection.once("connect_error", (error) => reject(new Error((error && error.data && error.data.message) || "Could not reach the server.")));
      });
    }
    const answer = await call(connection, "recording.watch", { case_id: where.case_id });
    state.iceServers = answer.ice_servers || [];
    return connection;
  }

  function recordLocally(stream) {
    if (!window.MediaRecorder) {
      state.local = null;
      return;
    }
    const chunks = [];
    const local = (state.local = new MediaRecorder(stream));
    local.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) {
        chunks.push(event.data);
      }
    });
    state.localCopy = new Promise((resolve) => {
      local.addEventListener("stop", () => resolve(chunks.length ? new Blob(chunks, { type: local.mimeType || "video/webm" }) : null));
    });
    local.start(1000);
  }

  function stopLocal() {
    if (state.local && state.local.state !== "inactive") {
      state.local.stop();
    }
    state.local = null;
  }

  function hideReview() {
    ui.review.pause();
    ui.review.removeAttribute("src");
    ui.review.load();
    ui.review.hidden = true;
    if (state.reviewUrl) {
      URL.revokeObjectURL(state.reviewUrl);
      state.reviewUrl = null;
    }
    ui.send.hidden = true;
    ui.rerecord.hidden = true;
    ui.discard.hidden = true;
    state.held = null;
  }

  async function showReview(recordingId) {
    state.held = recordingId;
    const copy = state.localCopy ? await state.localCopy : null;
    state.localCopy = null;
    if (copy) {
      state.reviewUrl = URL.createObjectURL(copy);
      ui.review.src = state.reviewUrl;
      ui.review.hidden = false;
    }
    ui.record.hidden = true;
    for (const button of [ui.send, ui.rerecord, ui.discard]) {
      button.hidden = false;
      button.disabled = false;
    }
    show(copy ? "Play it back, then send it, record again or discard it." : "Send it, record again or discard it.");
    ui.send.focus();
  }

  async function decide(send) {
    if (!state.held) {
      return null;
    }
    for (const button of [ui.send, ui.rerecord, ui.discard]) {
      button.disabled = true;
    }
    const recordingId = state.held;
    try {
      const outcome = await call(state.socket, "video.decide", { ...where, recording_id: recordingId, send });
      hideReview();
      ui.record.hidden = false;
      return outcome;
    } catch (error) {
      for (const button of [ui.send, ui.rerecord, ui.discard]) {
        button.disabled = false;
      }
      onError(error);
      return null;
    }
  }

  function release() {
    stopLocal();
    clearInterval(state.timer);
    state.timer = null;
    if (state.stream) {
      for (const track of state.stream.getTracks()) {
        track.stop();
      }
    }
    if (state.pc) {
      state.pc.close();
    }
    state.stream = null;
    state.pc = null;
    state.recordingId = null;
    ui.preview.srcObject = null;
    ui.preview.hidden = true;
    ui.stop.hidden = true;
    ui.record.hidden = false;
    ui.record.disabled = false;
    state.busy = false;
  }

  function finish(outcome) {
    release();
    if (outcome.held) {
      ui.record.hidden = true;
      showReview(outcome.recording_id);
      return;
    }
    state.localCopy = null;
    if (outcome.message) {
      onMessage(outcome.message);
    }
    if (outcome.status === "completed") {
      show(outcome.reason === "max-length" ? `Sent: the maximum length (${clockText(state.maxSeconds)}) was reached.` : "Sent.");
    } else {
      show("");
      onError(new Error(`The video message could not be recorded${outcome.error ? ` (${outcome.error})` : ""}.`));
    }
  }

  async function start() {
    if (state.busy) {
      return;
    }
    state.busy = true;
    ui.record.disabled = true;
    show("Starting the camera…");
    try {
      const connection = await socket();
      state.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
      ui.preview.srcObject = state.stream;
      ui.preview.hidden = false;
      ui.preview.play().catch(() => {});
      recordLocally(state.stream);
      const pc = (state.pc = new RTCPeerConnection({ iceServers: state.iceServers, bundlePolicy: "max-bundle" }));
      for (const track of state.stream.getTracks()) {
        const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [state.stream] });
        if (track.kind === "video") {
          preferVp8(transceiver);
        }
      }
      await pc.setLocalDescription(await pc.createOffer());
      await waitForCandidates(pc);
      const reply = await call(connection, "video.start", { ...where, sdp: pc.localDescription.sdp, review: true });
      state.recordingId = reply.recording_id;
      state.maxSeconds = reply.max_seconds;
      await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
      const began = Date.now();
      const tick = () => show(`Recording ${clockText((Date.now() - began) / 1000)} of at most ${clockText(state.maxSeconds)}`);
      tick();
      state.timer = setInterval(tick, 500);
      ui.record.hidden = true;
      ui.stop.hidden = false;
      ui.stop.disabled = false;
      ui.stop.focus();
    } catch (error) {
      const recording = state.recordingId;
      release();
      show("");
      if (recording && state.socket) {
        call(state.socket, "video.stop", { ...where, recording_id: recording }).catch(() => {});
      }
      onError(error.name === "NotAllowedError" ? new Error("Allow the camera and microphone to record a video message.") : error);
    }
  }

  async function stop() {
    if (!state.recordingId) {
      return;
    }
    ui.stop.disabled = true;
    clearInterval(state.timer);
    show("Finishing…");
    try {
      const recordingId = state.recordingId;
      const outcome = await call(state.socket, "video.stop", { ...where, recording_id: recordingId });
      if (state.recordingId === recordingId) {
        finish(outcome); // unless video.ended, which can come first, finished it already
      }
    } catch (error) {
      if (error.code === "not_recording") {
        return; // it ended by itself; video.ended brings the outcome
      }
      release();
      show("");
      onError(error);
    }
  }

  ui.record.addEventListener("click", start);
  ui.stop.addEventListener("click", stop);
  ui.send.addEventListener("click", async () => {
    show("Sending…");
    const outcome = await decide(true);
    if (outcome) {
      if (outcome.message) {
        onMessage(outcome.message);
      }
      show("Sent.");
    } else {
      show("");
    }
  });
  ui.discard.addEventListener("click", async () => {
    if (await decide(false)) {
      show("Discarded: nothing was sent.");
    }
  });
  ui.rerecord.addEventListener("click", async () => {
    if (await decide(false)) {
      start();
    }
  });
}
