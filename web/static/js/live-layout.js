// Where the live page's tiles go: the gallery (every tile the same size, as large as the
// call area allows) or the stage (one tile or the whiteboard large, the others in a strip
// below it). The stage shows, first found: the whiteboard when it is open, a shared
// screen, then in speaker view the person speaking (or the last one who spoke).

import { byId, el } from "./dom.js";

const GAP_PX = 8;
const ASPECT = 16 / 9;

/** Up to two letters for a tile whose camera is off: "Maria Lindqvist" → "ML". */
export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((word) => word[0].toUpperCase()).join("") || "?";
}

/** Small labels for a person's state (muted, camera off, hand raised, speaking). */
export function stateBadges(status, { speaking = false } = {}) {
  const badges = [];
  if (status.hand) {
    badges.push(el("span", { class: "state hand", dataset: { state: "hand" } }, "Hand raised"));
  }
  if (status.muted) {
    badges.push(el("span", { class: "state muted", dataset: { state: "muted" } }, "Muted"));
  }
  if (status.camera_off) {
    badges.push(el("span", { class: "state camera-off", dataset: { state: "camera-off" } }, "Camera off"));
  }
  if (speaking && !status.muted) {
    badges.push(el("span", { class: "state speaking", dataset: { state: "speaking" } }, "Speaking"));
  }
  return badges;
}

/** The call area's arrangement; `arrange()` after any change of tiles or state. */
export function callLayout() {
  const wrap = byId("stage-wrap");
  const stage = byId("stage");
  const grid = byId("grid");
  const board = byId("board-section");
  const home = board.parentElement;
  // a phone shows the person speaking large and the others in a strip from the start
  const narrow = window.matchMedia("(max-width: 36rem)").matches;
  const state = { view: narrow ? "speaker" : "gallery", boardOpen: false, lastSpeaker: null };

  function fitGallery() {
    if (wrap.dataset.layout !== "gallery") {
      return;
    }
    const count = grid.children.length || 1;
    const width = grid.clientWidth;
    const height = grid.clientHeight;
    if (!width || !height) {
      return;
    }
    let best = { cols: 1, w: 0, h: 0 };
    for (let cols = 1; cols <= count; cols += 1) {
      const rows = Math.ceil(count / cols);
      let w = (width - GAP_PX * (cols - 1)) / cols;
      let h = w / ASPECT;
      const maxH = (height - GAP_PX * (rows - 1)) / rows;
      if (h > maxH) {
        h = maxH;
        w = h * ASPECT;
      }
      if (w > best.w) {
        best = { cols, w, h };
      }
    }
    grid.style.setProperty("--cols", String(best.cols));
    grid.style.setProperty("--tile-w", `${Math.floor(best.w)}px`);
    grid.style.setProperty("--tile-h", `${Math.floor(best.h)}px`);
  }

  new ResizeObserver(fitGallery).observe(grid);

  /**
   * Arrange `tiles` (figure elements, the own tile first) given who speaks and which tile
   * carries a shared screen.
   */
  function arrange({ tiles, screen = null, speaking = null }) {
    if (speaking) {
      state.lastSpeaker = speaking;
    }
    let onStage = null;
    if (state.boardOpen) {
      onStage = board;
    } else if (screen) {
      onStage = screen;
    } else if (state.view === "speaker" && tiles.length > 1) {
      const remote = tiles.slice(1);
      onStage =
        remote.find((tile) => tile === speaking) ||
        remote.find((tile) => tile === state.lastSpeaker) ||
        remote[0];
    }
    board.hidden = !state.boardOpen;
    if (!state.boardOpen && board.parentElement !== home) {
      home.append(board);
    }
    wrap.dataset.layout = onStage ? "stage" : "gallery";
    if (onStage && stage.firstElementChild !== onStage) {
      stage.replaceChildren(onStage);
    } else if (!onStage && stage.firstElementChild) {
      const leaving = stage.firstElementChild;
      if (leaving !== board) {
        grid.append(leaving);
      } else {
        home.append(board);
      }
    }
    for (const tile of tiles) {
      if (tile !== onStage && tile.parentElement !== grid) {
        grid.append(tile);
      }
    }
    // keep the strip in the tiles' order (own tile first)
    const inGrid = tiles.filter((tile) => tile !== onStage);
    inGrid.forEach((tile, index) => {
      if (grid.children[index] !== tile) {
        grid.insertBefore(tile, grid.children[index] || null);
      }
    });
    if (!onStage) {
      grid.style.removeProperty("--cols");
    }
    fitGallery();
  }

  return {
    arrange,
    get view() {
      return state.view;
    },
    set view(value) {
      state.view = value === "speaker" ? "speaker" : "gallery";
    },
    get boardOpen() {
      return state.boardOpen;
    },
    set boardOpen(value) {
      state.boardOpen = Boolean(value);
    },
  };
}
