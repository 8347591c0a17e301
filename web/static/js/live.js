// /cases/{case_id}/live: the case's live room. Camera and microphone preview, then two
// peer connections to the server (see docs/signaling.md): the publish connection, which
// this page offers with send-only tracks, and the subscribe connection, which the server
// offers with everyone else's tracks. ICE is not trickled: each side waits for its
// candidates and sends them inside the SDP. A connection that fails is re-established
// by joining again (fresh connections on both sides, fresh TURN credentials). When the
// browser finds no network path at all (no candidate gathered, or attempts that never
// connect), the page stops trying and says so.

import { io } from "/static/vendor/socket.io.esm.min.js";
import { api, requireStage } from "./api.js";
import { byId, el, roleName } from "./dom.js";
import { clearError, showError } from "./feedback.js";
import { renderHeader } from "./header.js";
import { callLayout, initials, stateBadges } from "./live-layout.js";
import { pausedBadge, qualityBadge } from "./live-quality.js";
import { liveRooms } from "./live-rooms.js";
import { speakingDetector } from "./live-speaking.js";
import { showRecordingIndicator } from "./recording-indicator.js";
import { browserZone, formatSpan } from "./zoned-time.js";

const caseId = decodeURIComponent(
  window.location.pathname.replace(/^\/cases\//, "").replace(/\/live\/?$/, ""),
);
const GATHER_TIMEOUT_MS = 5000;
const REPLY_TIMEOUT_MS = 20000;
const DISCONNECTED_GRACE_MS = 4000;
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
// Joins in a row whose media never connected before the page gives up.
const UNCONNECTED_ATTEMPTS = 2;
const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
// How long the tiles' sizes must stay put before the server is told them (media.tiles).
const TILES_DEBOUNCE_MS = 300;
// The camera is sent as three simulcast layers (a quarter, half and full size), from which
// the server forwards to each person the one their link and tile size call for. Screen
// sharing stays one layer.
const CAMERA_LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
];

const session = await requireStage("active");
const rooms = liveRooms({
  caseId,
  request: (name, payload) => request(name, payload),
  onChange: () => renderGrid(),
  sendStatus: (extra) => sendStatus(extra),
});
const layout = callLayout();
const tileWatch = new ResizeObserver(() => scheduleTiles());
tileWatch.observe(byId("grid"));
tileWatch.observe(byId("stage"));
byId("view-toggle").setAttribute("aria-pressed", String(layout.view === "speaker"));
byId("main").hidden = false;

const live = {
  local: null, // MediaStream from the camera and microphone
  socket: null,
  wanted: false, // the person asked to be in the room (until they leave)
  inRoom: false,
  generation: 0, // bumped whenever the connections are torn down
  ready: null, // resolves with the join reply of the current generation
  iceServers: [],
  iceErrors: [], // icecandidateerror events of the current attempt: STUN/TURN servers' refusals
  connected: false, // the current attempt's connections reached "connected"
  unconnected: 0, // attempts in a row that never connected
  participantId: null,
  publishPc: null,
  subscribePc: null,
  participants: [],
  tracks: [],
  viewSeq: 0,
  reconnecting: null,
  tiles: new Map(), // participant_id -> {figure, video, key}
  audioMuted: false,
  cameraOff: false,
  screen: null, // {track, transceiver} while sharing a screen
  recordingNotice: null, // shown while the server says this person's room is recorded
  status: new Map(), // participant_id -> {muted, camera_off, speaking, hand} (live.person)
  speaking: new Set(), // participant ids this page hears speaking (getStats audioLevel)
  selfSpeaking: false,
  sentStatus: "", // the last live.status sent, to send only changes
  speaker: null, // the room's active speaker as the server decides it (media.speaker)
  speakerSeq: -1, // the `seq` of that decision: a newer one replaces it
  speakerEvents: [], // the latest 50 media.speaker received (for the browser tests)
  quality: new Map(), // participant_id -> {level, loss_pct, rtt_ms} (media.quality)
  paused: new Set(), // producer ids of videos withheld from this page for bandwidth
  tilesTimer: null,
  sentTiles: "", // the last media.tiles sent, to send only changes
};
const speaking = speakingDetector(
  () => live,
  (heard, self) => {
    live.speaking = heard;
    live.selfSpeaking = self;
    sendStatus();
    renderGrid();
  },
);

// A hook for the browser tests (and for people debugging a call in the console).
window.caucusLive = {
  get publishPc() {
    return live.publishPc;
  },
  get subscribePc() {
    return live.subscribePc;
  },
  get tracks() {
    return live.tracks;
  },
  get participants() {
    return live.participants;
  },
  get participantId() {
    return live.participantId;
  },
  get rooms() {
    return rooms.view;
  },
  get layout() {
    return byId("stage-wrap").dataset.layout;
  },
  get speaker() {
    return live.speaker;
  },
  get speakerEvents() {
    return live.speakerEvents;
  },
  get quality() {
    return Object.fromEntries(live.quality);
  },
  get sentTiles() {
    return live.sentTiles ? JSON.parse(live.sentTiles) : null;
  },
};

// --- state display -----------------------------------------------------------------------

function showState(kind, text) {
  byId("connection-dot").dataset.state = kind;
  byId("connection-state").textContent = text;
}

function refreshState() {
  if (!live.wanted) {
    return;
  }
  if (live.reconnecting) {
    showState("reconnecting", "Reconnecting…");
    return;
  }
  const publish = live.publishPc ? live.publishPc.connectionState : "connected";
  const subscribe = live.subscribePc ? live.subscribePc.connectionState : "connected";
  if (live.inRoom && publish === "connected" && subscribe === "connected") {
    live.connected = true;
    live.unconnected = 0;
    showState("connected", "Connected");
  } else {
    showState("connecting", "Connecting…");
  }
}

function setControls() {
  byId("join").hidden = live.wanted;
  byId("leave").hidden = !live.wanted;
  byId("join").disabled = false;
  // the pre-join screen until the person joins; the call fills the window from then on
  byId("prejoin").hidden = live.wanted;
  byId("call").hidden = !live.wanted;
  document.body.classList.toggle("in-call", live.wanted);
  (live.wanted ? byId("device-away") : byId("device-home")).append(byId("device-fields"));
  if (!live.wanted) {
    closeSidePanels();
  }
}

/** Tell the room (and the neutrals) this person's state, when it changed; `extra` is
 * `{hand: false}` when they lower their own hand, sent whatever changed. The raised hand
 * is not part of the state sent: only "Ask the mediator" raises it, and a speaking change
 * sent while that request is on its way must not take it back. */
function sendStatus(extra = {}) {
  if (!live.inRoom || !live.socket) {
    return;
  }
  const status = {
    muted: live.audioMuted,
    camera_off: live.cameraOff,
    speaking: live.selfSpeaking && !live.audioMuted,
  };
  const key = JSON.stringify(status);
  if (key === live.sentStatus && Object.keys(extra).length === 0) {
    return;
  }
  live.sentStatus = key;
  request("live.status", { case_id: caseId, ...status, ...extra }).catch(() => {
    live.sentStatus = ""; // sent again with the next change
  });
}

// --- camera and microphone ---------------------------------------------------------------

function constraints() {
  const camera = byId("camera").value;
  const microphone = byId("microphone").value;
  return {
    audio: microphone ? { deviceId: { exact: microphone } } : true,
    video: camera ? { ...VIDEO, deviceId: { exact: camera } } : VIDEO,
  };
}

function applyToggles(stream) {
  for (const track of stream.getAudioTracks()) {
    track.enabled = !live.audioMuted;
  }
  for (const track of stream.getVideoTracks()) {
    track.enabled = !live.cameraOff;
  }
  byId("self-tile").classList.toggle("no-video", live.cameraOff);
  byId("prejoin-camera-off").hidden = !live.cameraOff;
  for (const [id, pressed, on, off] of [
    ["mute", live.audioMuted, "Unmute", "Mute"],
    ["prejoin-mute", live.audioMuted, "Microphone off", "Microphone on"],
    ["camera-toggle", live.cameraOff, "Start camera", "Stop camera"],
    ["prejoin-camera", live.cameraOff, "Camera off", "Camera on"],
  ]) {
    const button = byId(id);
    button.setAttribute("aria-pressed", String(pressed));
    button.classList.toggle("off", pressed);
    button.textContent = pressed ? on : off;
  }
  sendStatus();
  renderGrid();
}

async function startPreview() {
  const region = byId("device-error");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints());
  } catch (error) {
    showError(
      region,
      new Error(`The camera or microphone could not be opened (${error.name}). You can still join to see and hear the others.`),
    );
    return;
  }
  clearError(region);
  const previous = live.local;
  live.local = stream;
  applyToggles(stream);
  byId("preview").srcObject = stream;
  byId("prejoin-video").srcObject = stream;
  if (live.publishPc) {
    for (const sender of live.publishPc.getSenders()) {
      const kind = sender.track ? sender.track.kind : null;
      const replacement = stream.getTracks().find((track) => track.kind === kind);
      if (replacement) {
        await sender.replaceTrack(replacement);
      }
    }
  }
  if (previous) {
    for (const track of previous.getTracks()) {
      track.stop();
    }
  }
  byId("mute").disabled = stream.getAudioTracks().length === 0;
  byId("camera-toggle").disabled = stream.getVideoTracks().length === 0;
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const inUse = new Map(
    (live.local ? live.local.getTracks() : []).map((track) => [track.kind, track.getSettings().deviceId]),
  );
  for (const [selectId, kind, trackKind, noun] of [
    ["camera", "videoinput", "video", "Camera"],
    ["microphone", "audioinput", "audio", "Microphone"],
  ]) {
    const select = byId(selectId);
    const found = devices.filter((device) => device.kind === kind);
    select.replaceChildren(
      ...found.map((device, index) =>
        el("option", { value: device.deviceId }, device.label || `${noun} ${index + 1}`),
      ),
    );
    if (found.length === 0) {
      select.append(el("option", { value: "" }, `No ${noun.toLowerCase()} found`));
    }
    const current = inUse.get(trackKind);
    if (current && found.some((device) => device.deviceId === current)) {
      select.value = current;
    }
  }
}

// --- signaling -----------------------------------------------------------------------------

class SignalError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SignalError";
    this.code = code;
  }
}

// The browser could not reach the media server: no candidate, or ICE never connected.
class ConnectError extends Error {
  constructor() {
    const refused = live.iceErrors.find((e) => e.errorCode >= 300 && e.errorCode < 700);
    const why = refused
      ? ` The relay server ${refused.url} refused the connection (${refused.errorCode} ${refused.errorText}).`
      : "";
    super(
      "Could not connect your camera and microphone to the meeting: your browser found no network " +
        `path to the media server.${why} Check your network or firewall, or ask the administrator, ` +
        "then join again.",
    );
    this.name = "ConnectError";
    this.code = "media_unreachable";
  }
}

async function request(name, payload) {
  let reply;
  try {
    reply = await live.socket.timeout(REPLY_TIMEOUT_MS).emitWithAck(name, payload);
  } catch {
    throw new SignalError("timeout", "The server did not answer in time.");
  }
  if (!reply || !reply.ok) {
    const error = (reply && reply.error) || {};
    throw new SignalError(error.code || "error", error.message || "The server refused the request.");
  }
  return reply;
}

function connectSocket() {
  if (live.socket) {
    return live.socket.connected
      ? Promise.resolve()
      : new Promise((resolve) => live.socket.once("connect", resolve));
  }
  const socket = (live.socket = io("/media", { transports: ["websocket"] }));
  rooms.bind(socket);
  // `recording.state` arrives when the room starts or stops being recorded and when this
  // person enters a recorded room, before any of their media is recorded.
  const slot = byId("recording-indicator-slot");
  slot.replaceChildren();
  live.recordingNotice = showRecordingIndicator(socket, slot);
  socket.on("media.offer", answerOffer);
  socket.on("live.person", (person) => {
    if (person && person.participant_id) {
      live.status.set(person.participant_id, person);
      renderGrid();
    }
  });
  socket.on("media.tracks", (view) => {
    updateView(view);
  });
  socket.on("media.speaker", (change) => {
    if (change && typeof change.seq === "number") {
      live.speakerEvents = [...live.speakerEvents.slice(-49), change];
      setSpeaker(change.participant_id, change.seq);
      renderGrid();
    }
  });
  socket.on("media.quality", (told) => {
    if (!told || typeof told.participants !== "object") {
      return;
    }
    live.quality = new Map(Object.entries(told.participants));
    live.paused = new Set(Array.isArray(told.paused) ? told.paused : []);
    renderGrid();
  });
  socket.on("media.ended", (ended) => {
    if (ended && ended.reason === "removed") {
      live.wanted = false;
      closeConnections();
      setControls();
      showState("failed", "The mediator removed you from the session");
      return;
    }
    if (ended && ended.reason === "connection_failed") {
      connectionFailed();
      return;
    }
    reconnect();
  });
  socket.on("disconnect", () => {
    if (live.wanted) {
      live.inRoom = false;
      showState("reconnecting", "Connection to the server lost; reconnecting…");
    }
  });
  socket.io.on("reconnect", () => {
    // The server ended the live session with the old connection: join again.
    if (live.wanted) {
      reconnect();
    }
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (error) => {
      const data = error && error.data;
      if (data && data.code) {
        socket.disconnect();
        live.socket = null;
        reject(new SignalError(data.code, data.message || "The server refused the connection."));
      }
      // Otherwise socket.io keeps trying by itself; "connect" settles the promise.
    });
  });
}

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

function newPeerConnection() {
  const pc = new RTCPeerConnection({ iceServers: live.iceServers, bundlePolicy: "max-bundle" });
  const generation = live.generation;
  let grace = null;
  pc.addEventListener("connectionstatechange", refreshState);
  pc.addEventListener("icecandidateerror", (event) => {
    if (generation === live.generation) {
      live.iceErrors.push({ url: event.url, errorCode: event.errorCode, errorText: event.errorText });
    }
  });
  pc.addEventListener("iceconnectionstatechange", () => {
    if (generation !== live.generation) {
      return;
    }
    const ice = pc.iceConnectionState;
    clearTimeout(grace);
    if (ice === "failed") {
      connectionFailed();
    } else if (ice === "disconnected") {
      showState("reconnecting", "Connection interrupted…");
      grace = setTimeout(() => {
        if (generation === live.generation && pc.iceConnectionState === "disconnected") {
          reconnect();
        }
      }, DISCONNECTED_GRACE_MS);
    }
    refreshState();
  });
  return pc;
}

async function publish() {
  if (!live.local || live.local.getTracks().length === 0) {
    return;
  }
  const pc = (live.publishPc = newPeerConnection());
  for (const track of live.local.getTracks()) {
    const init = { direction: "sendonly", streams: [live.local] };
    if (track.kind === "video") {
      init.sendEncodings = CAMERA_LAYERS.map((layer) => ({ ...layer }));
    }
    pc.addTransceiver(track, init);
  }
  await pc.setLocalDescription(await pc.createOffer());
  await waitForCandidates(pc);
  if (!/^a=candidate:/m.test(pc.localDescription.sdp)) {
    throw new ConnectError(); // nothing to reach the server from (e.g. the relay refused us)
  }
  const reply = await request("media.publish", { case_id: caseId, sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  await oneLayerAtFullSize(pc, reply.sdp);
}

// A server that does not answer with a=simulcast takes one layer: the browser then sends
// only the first encoding (the quarter-size one), so that one is sent at full size.
async function oneLayerAtFullSize(pc, answer) {
  if (/^a=simulcast:/m.test(answer)) {
    return;
  }
  for (const sender of pc.getSenders()) {
    const parameters = sender.getParameters();
    // the camera's sender (a shared screen's has no rid)
    if (!parameters.encodings || parameters.encodings.length !== 1 || parameters.encodings[0].rid !== CAMERA_LAYERS[0].rid) {
      continue;
    }
    const full = CAMERA_LAYERS[CAMERA_LAYERS.length - 1];
    parameters.encodings[0].scaleResolutionDownBy = full.scaleResolutionDownBy;
    parameters.encodings[0].maxBitrate = full.maxBitrate;
    try {
      await sender.setParameters(parameters);
    } catch {
      // The call goes on with the smaller picture.
    }
  }
}

// The browser's later offers name the camera's layers (a=rid, a=simulcast) but leave out the
// header extension that carries those names when the server did not take it, and then
// refuse their own offer: it is put back.
const RID_EXTENSION = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

function withRidExtension(sdp) {
  const sections = sdp.split(/(?=^m=)/m);
  const used = new Set([...sdp.matchAll(/^a=extmap:(\d+)/gm)].map((match) => Number(match[1])));
  const free = [...Array(14).keys()].map((i) => i + 1).find((id) => !used.has(id));
  return sections
    .map((section) => {
      if (!/^a=simulcast:/m.test(section) || section.includes(RID_EXTENSION) || free === undefined) {
        return section;
      }
      return section.replace(/^(a=mid:.*\r\n)/m, `$1a=extmap:${free} ${RID_EXTENSION}\r\n`);
    })
    .join("");
}

// Screen sharing: an extra video track on the publish connection, named to the server by
// its mid (the server refuses it where the mediator turned sharing off).
async function renegotiatePublish() {
  const pc = live.publishPc;
  const offer = await pc.createOffer();
  await pc.setLocalDescription({ type: "offer", sdp: withRidExtension(offer.sdp) });
  await waitForCandidates(pc);
  const payload = { case_id: caseId, sdp: pc.localDescription.sdp };
  if (live.screen && live.screen.track) {
    payload.screen_mid = live.screen.transceiver.mid;
  }
  const reply = await request("media.publish", payload);
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  await oneLayerAtFullSize(pc, reply.sdp);
}

async function startSharing() {
  if (!live.publishPc || (live.screen && live.screen.track)) {
    return;
  }
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10 } } });
  const track = stream.getVideoTracks()[0];
  track.addEventListener("ended", () => stopSharing());
  if (live.screen) {
    await live.screen.transceiver.sender.replaceTrack(track);
    live.screen.track = track;
  } else {
    const transceiver = live.publishPc.addTransceiver(track, { direction: "sendonly" });
    live.screen = { track, transceiver };
  }
  try {
    await renegotiatePublish();
  } catch (error) {
    await stopSharing(false);
    throw error;
  }
  showSharing(true);
}

function showSharing(sharing) {
  const button = byId("share-screen");
  button.textContent = sharing ? "Stop sharing" : "Share screen";
  button.setAttribute("aria-pressed", String(sharing));
}

async function stopSharing(tell = true) {
  const screen = live.screen;
  if (!screen || !screen.track) {
    return;
  }
  screen.track.stop();
  screen.track = null;
  await screen.transceiver.sender.replaceTrack(null);
  showSharing(false);
  if (tell && live.publishPc) {
    await renegotiatePublish().catch(() => {});
  }
}

async function answerOffer(offer, acknowledge) {
  const generation = live.generation;
  try {
    await live.ready;
    if (generation !== live.generation) {
      throw new Error("this offer belongs to a connection that has been replaced");
    }
    if (!live.subscribePc) {
      live.subscribePc = newPeerConnection();
      live.subscribePc.addEventListener("track", renderGrid);
    }
    const pc = live.subscribePc;
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await waitForCandidates(pc);
    acknowledge({ sdp: pc.localDescription.sdp });
    updateView(offer);
  } catch (error) {
    acknowledge({ error: { code: "negotiation_failed", message: String(error && error.message) } });
  }
}

async function enterRoom() {
  live.generation += 1;
  live.iceErrors = [];
  live.connected = false;
  let ready;
  live.ready = new Promise((resolve) => {
    ready = resolve;
  });
  await connectSocket();
  const reply = await request("media.join", { case_id: caseId });
  live.iceServers = reply.ice_servers || [];
  live.participantId = reply.participant_id;
  live.inRoom = true;
  ready(reply);
  rooms.setState(reply.live);
  updateView(reply);
  await publish();
  live.sentStatus = "";
  sendStatus();
  speaking.start();
  refreshState();
}

function closeConnections() {
  live.generation += 1;
  live.inRoom = false;
  speaking.stop();
  live.speaking = new Set();
  live.selfSpeaking = false;
  live.status.clear();
  live.speaker = null;
  live.speakerSeq = -1;
  live.quality = new Map();
  live.paused = new Set();
  live.sentTiles = "";
  // `seq` orders the views of one live session; the next join may be served by another
  // media worker, which numbers its views from 1.
  live.viewSeq = 0;
  if (live.recordingNotice) {
    // Out of the room nothing of this person is recorded; entering again tells anew.
    live.recordingNotice.hidden = true;
  }
  for (const pc of [live.publishPc, live.subscribePc]) {
    if (pc) {
      pc.close();
    }
  }
  live.publishPc = null;
  live.subscribePc = null;
  if (live.screen && live.screen.track) {
    live.screen.track.stop();
  }
  live.screen = null;
  showSharing(false);
  live.participants = [];
  live.tracks = [];
  renderGrid();
}

async function join() {
  clearError(byId("page-error"));
  live.wanted = true;
  setControls();
  showState("connecting", "Connecting…");
  try {
    await enterRoom();
  } catch (error) {
    closeConnections();
    if (live.socket && live.socket.connected) {
      request("media.leave", { case_id: caseId }).catch(() => {});
    }
    live.wanted = false;
    setControls();
    showState("failed", error instanceof ConnectError ? "Could not connect" : "Not in the room");
    showError(byId("page-error"), error);
  }
}

// The media connections of the current attempt failed (ICE failed, or the server closed
// them): join again, unless attempts keep failing without ever connecting.
function connectionFailed() {
  if (!live.wanted || live.reconnecting) {
    return;
  }
  if (!live.connected) {
    live.unconnected += 1;
    if (live.unconnected >= UNCONNECTED_ATTEMPTS) {
      giveUp(new ConnectError());
      return;
    }
  }
  reconnect();
}

function giveUp(error) {
  live.wanted = false;
  live.unconnected = 0;
  closeConnections();
  if (live.socket && live.socket.connected) {
    request("media.leave", { case_id: caseId }).catch(() => {});
  }
  setControls();
  showState("failed", "Could not connect");
  showError(byId("page-error"), error);
}

function reconnect() {
  if (!live.wanted || live.reconnecting) {
    return;
  }
  live.reconnecting = (async () => {
    showState("reconnecting", "Reconnecting…");
    for (let attempt = 0; live.wanted; attempt += 1) {
      closeConnections();
      try {
        if (live.socket && live.socket.connected) {
          await request("media.leave", { case_id: caseId }).catch(() => {});
        }
        await enterRoom();
        return;
      } catch (error) {
        if (error instanceof ConnectError) {
          live.unconnected += 1;
          if (live.unconnected >= UNCONNECTED_ATTEMPTS) {
            giveUp(error);
            return;
          }
        }
        if (error instanceof SignalError && ["forbidden", "not_found", "unauthenticated"].includes(error.code)) {
          live.wanted = false;
          setControls();
          showError(byId("page-error"), error);
          showState("failed", "Not in the room");
          return;
        }
        const delay = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)];
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  })().finally(() => {
    live.reconnecting = null;
    refreshState();
  });
}

async function leave() {
  live.wanted = false;
  closeConnections();
  setControls();
  showState("idle", "You left the room");
  if (live.socket && live.socket.connected) {
    try {
      await request("media.leave", { case_id: caseId });
    } catch {
      // Already out (the connection ended); nothing to undo.
    }
  }
}

// --- the grid ------------------------------------------------------------------------------

function updateView(view) {
  // Views can arrive out of order (an offer's view is applied after its answer is made):
  // keep the newest.
  if (typeof view.seq === "number") {
    if (view.seq <= live.viewSeq) {
      return;
    }
    live.viewSeq = view.seq;
  }
  if (Array.isArray(view.participants)) {
    live.participants = view.participants;
    for (const person of view.participants) {
      live.status.set(person.participant_id, person);
    }
  }
  if (Array.isArray(view.tracks)) {
    live.tracks = view.tracks;
  }
  if (typeof view.speaker_seq === "number") {
    setSpeaker(view.speaker, view.speaker_seq);
  }
  renderGrid();
}

// Views and media.speaker can overtake each other: the decision with the highest `seq` holds.
function setSpeaker(participantId, seq) {
  if (seq >= live.speakerSeq) {
    live.speakerSeq = seq;
    live.speaker = participantId || null;
  }
}

function receivedTrack(mid) {
  const pc = live.subscribePc;
  if (!pc) {
    return null;
  }
  const transceiver = pc.getTransceivers().find((candidate) => candidate.mid === mid);
  return transceiver && transceiver.receiver.track ? transceiver.receiver.track : null;
}

function statusOf(person) {
  return live.status.get(person.participant_id) || person;
}

function renderGrid() {
  const grid = byId("grid");
  const others = live.inRoom
    ? live.participants.filter((person) => person.participant_id !== live.participantId)
    : [];
  const present = new Set();
  const screens = live.tracks.filter((track) => track.source === "screen");
  for (const track of screens) {
    const owner = others.find((person) => person.participant_id === track.participant_id);
    if (owner) {
      others.push({
        ...owner,
        participant_id: `${owner.participant_id}:screen`,
        display_name: `${owner.display_name} (screen)`,
        screenOf: track.mid,
      });
    }
  }
  let screenTile = null;
  let talkingTile = null;
  let activeTile = null;
  for (const person of others) {
    present.add(person.participant_id);
    let tile = live.tiles.get(person.participant_id);
    if (!tile) {
      const video = el("video", { autoplay: true, playsinline: true });
      const states = el("span", { class: "states" });
      const quality = el("span", { class: "quality-slot" });
      const active = el("span", { class: "visually-hidden" });
      const figure = el(
        "figure",
        {
          class: person.screenOf ? "tile screen" : "tile",
          dataset: { testid: "remote-tile", participant: person.participant_id, initials: initials(person.display_name) },
        },
        video,
        quality,
        el(
          "figcaption",
          {},
          el("span", { dataset: { testid: "tile-name" } }, person.display_name),
          " ",
          el("span", { class: "tag" }, roleName(person.role)),
          active,
          " ",
          states,
        ),
      );
      tile = { figure, video, states, quality, active, key: "", shown: "", rated: "" };
      live.tiles.set(person.participant_id, tile);
      grid.append(figure);
    }
    const shownTracks = person.screenOf
      ? live.tracks.filter((track) => track.mid === person.screenOf)
      : live.tracks.filter((track) => track.participant_id === person.participant_id && track.source !== "screen");
    const tracks = shownTracks.map((track) => receivedTrack(track.mid)).filter(Boolean);
    const key = tracks.map((track) => track.id).join(",");
    if (key !== tile.key) {
      tile.key = key;
      tile.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    }
    // the videos this tile shows, for media.tiles; withheld ones show the name instead
    tile.producers = shownTracks.filter((track) => track.kind === "video").map((track) => track.producer_id);
    const paused = tile.producers.some((producer) => live.paused.has(producer));
    const status = person.screenOf ? {} : statusOf(person);
    const talking = !person.screenOf && (live.speaking.has(person.participant_id) || Boolean(status.speaking));
    const isActive = !person.screenOf && person.participant_id === live.speaker;
    tile.figure.classList.toggle(
      "no-video",
      !tracks.some((track) => track.kind === "video") || Boolean(status.camera_off) || paused,
    );
    tile.figure.dataset.speaking = String(talking && !status.muted);
    tile.figure.dataset.activeSpeaker = String(isActive);
    tile.figure.dataset.paused = String(paused);
    tile.active.textContent = isActive ? " (speaking now)" : "";
    const shown = JSON.stringify([status.muted, status.camera_off, status.hand, talking, paused]);
    if (shown !== tile.shown) {
      tile.shown = shown;
      const badges = stateBadges(status, { speaking: talking });
      tile.states.replaceChildren(...badges, ...(paused ? [pausedBadge()] : []));
    }
    showQuality(tile, person.screenOf ? null : live.quality.get(person.participant_id));
    if (person.screenOf && !screenTile) {
      screenTile = tile.figure;
    }
    if (isActive) {
      activeTile = tile.figure;
    }
    if (talking && !status.muted && !talkingTile) {
      talkingTile = tile.figure;
    }
  }
  for (const [participantId, tile] of live.tiles) {
    if (!present.has(participantId)) {
      tile.video.srcObject = null;
      tile.figure.remove();
      live.tiles.delete(participantId);
    }
  }
  const self = byId("self-tile");
  const mine = { muted: live.audioMuted, camera_off: live.cameraOff, hand: rooms.hand };
  const selfTalking = live.selfSpeaking && !live.audioMuted;
  self.dataset.speaking = String(selfTalking);
  self.dataset.activeSpeaker = String(live.inRoom && live.speaker === live.participantId);
  byId("self-states").replaceChildren(...stateBadges(mine, { speaking: selfTalking }));
  const selfQuality = live.inRoom ? live.quality.get(live.participantId) : null;
  byId("self-quality").replaceChildren(...[qualityBadge(selfQuality)].filter(Boolean));
  const tiles = [self, ...others.map((person) => live.tiles.get(person.participant_id).figure)];
  // The server's active speaker takes the stage; before it named one, whoever this page
  // hears speaking.
  layout.arrange({ tiles, screen: screenTile, speaking: live.speaker ? activeTile : talkingTile });
  byId("alone").hidden = !live.inRoom || others.length > 0;
  byId("share-screen").hidden = !live.inRoom;
  scheduleTiles();
}

function showQuality(tile, entry) {
  const rated = JSON.stringify(entry || null);
  if (rated !== tile.rated) {
    tile.rated = rated;
    tile.quality.replaceChildren(...[qualityBadge(entry)].filter(Boolean));
  }
}

// --- tile sizes (media.tiles) ----------------------------------------------------------------

/** Tell the server how tall each received video is shown, once the layout settles. */
function scheduleTiles() {
  clearTimeout(live.tilesTimer);
  live.tilesTimer = setTimeout(sendTiles, TILES_DEBOUNCE_MS);
}

function sendTiles() {
  if (!live.inRoom || !live.socket) {
    return;
  }
  const scale = window.devicePixelRatio || 1;
  const tiles = [];
  for (const tile of live.tiles.values()) {
    const height = tile.figure.isConnected ? tile.figure.getBoundingClientRect().height : 0;
    for (const producer of tile.producers || []) {
      if (producer) {
        tiles.push({ producer_id: producer, height: height > 0 ? Math.min(4320, Math.round(height * scale)) : null });
      }
    }
  }
  tiles.sort((a, b) => a.producer_id.localeCompare(b.producer_id));
  const key = JSON.stringify(tiles);
  if (key === live.sentTiles) {
    return;
  }
  live.sentTiles = key;
  request("media.tiles", { case_id: caseId, tiles }).catch(() => {
    live.sentTiles = ""; // e.g. a view changed meanwhile: the next layout sends again
  });
}

// --- controls ------------------------------------------------------------------------------

function toggleMute() {
  live.audioMuted = !live.audioMuted;
  if (live.local) {
    applyToggles(live.local);
  }
}

function toggleCamera() {
  live.cameraOff = !live.cameraOff;
  if (live.local) {
    applyToggles(live.local);
  }
}

const SIDE_PANELS = [
  ["people-panel", "people-toggle"],
  ["panel", "panel-toggle"],
];

function openSidePanel(id, open) {
  for (const [panel, toggle] of SIDE_PANELS) {
    const shown = panel === id ? open : open ? false : !byId(panel).hidden;
    byId(panel).hidden = !shown;
    byId(toggle).setAttribute("aria-pressed", String(shown));
  }
  renderGrid();
}

function closeSidePanels() {
  for (const [panel, toggle] of SIDE_PANELS) {
    byId(panel).hidden = true;
    byId(toggle).setAttribute("aria-pressed", "false");
  }
}

byId("join").addEventListener("click", () => {
  byId("join").disabled = true;
  join().then(() => {
    // The mediator's console opens by itself where there is room for it beside the call.
    if (live.wanted && rooms.isNeutral() && window.matchMedia("(min-width: 60rem)").matches) {
      openSidePanel("panel", true);
    }
  });
});
byId("leave").addEventListener("click", leave);
byId("share-screen").addEventListener("click", () => {
  const action = live.screen && live.screen.track ? stopSharing() : startSharing();
  action.catch((error) => showError(byId("page-error"), error));
});
byId("mute").addEventListener("click", toggleMute);
byId("prejoin-mute").addEventListener("click", toggleMute);
byId("camera-toggle").addEventListener("click", toggleCamera);
byId("prejoin-camera").addEventListener("click", toggleCamera);
byId("board-toggle").addEventListener("click", () => {
  layout.boardOpen = !layout.boardOpen;
  byId("board-toggle").setAttribute("aria-pressed", String(layout.boardOpen));
  renderGrid();
  if (layout.boardOpen) {
    rooms.redrawBoard();
  }
});
byId("view-toggle").addEventListener("click", () => {
  layout.view = layout.view === "speaker" ? "gallery" : "speaker";
  byId("view-toggle").setAttribute("aria-pressed", String(layout.view === "speaker"));
  renderGrid();
});
for (const [panel, toggle] of SIDE_PANELS) {
  byId(toggle).addEventListener("click", () => openSidePanel(panel, byId(panel).hidden));
}
document.querySelectorAll("[data-closes]").forEach((button) => {
  button.addEventListener("click", () => {
    openSidePanel(button.dataset.closes, false);
    const toggle = SIDE_PANELS.find(([panel]) => panel === button.dataset.closes)[1];
    byId(toggle).focus();
  });
});
byId("settings").addEventListener("click", () => byId("settings-dialog").showModal());
byId("settings-close").addEventListener("click", () => byId("settings-dialog").close());
for (const id of ["camera", "microphone"]) {
  byId(id).addEventListener("change", () => {
    startPreview();
  });
}
window.addEventListener("pagehide", () => {
  if (live.socket) {
    live.socket.disconnect();
  }
});

/** "The next session starts …" above the room, when the case has one scheduled. */
async function showNextSession() {
  try {
    const { next } = await api("GET", `/api/cases/${encodeURIComponent(caseId)}/sessions`);
    if (next) {
      const line = byId("next-session");
      line.textContent = `The next session is on ${formatSpan(next.starts_at, next.minutes, browserZone())}.`;
      line.hidden = false;
    }
  } catch {
    // The room works without it: the line stays hidden.
  }
}

// --- start ---------------------------------------------------------------------------------

try {
  const answer = await api("GET", `/api/cases/${encodeURIComponent(caseId)}`);
  const title = (answer.case && (answer.case.title || (answer.case.intake || {}).title)) || "";
  byId("case-title").textContent = title;
  document.title = `Live room · ${title} · Caucus`;
  const link = byId("case-link");
  link.href = `/cases/${encodeURIComponent(caseId)}`;
  link.textContent = title || "Case";
  const me = (answer.members || []).find((member) => String(member.user_id) === String(session.user.id));
  renderHeader(session, { caseRole: me ? me.role : null });
  const myName = me ? me.display_name : session.user.display_name;
  byId("self-name").textContent = myName;
  byId("self-tile").dataset.initials = initials(myName);
  byId("prejoin-name").textContent = myName;
  byId("prejoin-role").textContent = me ? roleName(me.role) : "";
  byId("prejoin-role").hidden = !me;
  showNextSession();
  await startPreview();
  byId("join").disabled = false;
} catch (error) {
  renderHeader(session);
  byId("prejoin").hidden = true;
  showError(byId("page-error"), error);
}
