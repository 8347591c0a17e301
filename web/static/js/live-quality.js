// How well each person's connection carries the call, as the server measures it
// (`media.quality`: loss and round trip from what its media server already sees), shown as
// a badge on their tile: signal bars and a word, read as "Connection: good" (fair, poor).
// A video the server withholds from this page because this page's link cannot carry it
// shows the person's name and "Poor connection" instead of a frozen picture.

import { el } from "./dom.js";

const WORDS = { good: "Good", fair: "Fair", poor: "Poor" };
// Signal bars lit per level.
const BARS = { good: 3, fair: 2, poor: 1 };

/** A short description of one person's measured connection, for the badge's tooltip. */
export function describeQuality(entry) {
  const parts = [];
  if (typeof entry.loss_pct === "number") {
    parts.push(`${entry.loss_pct} % loss`);
  }
  if (typeof entry.rtt_ms === "number") {
    parts.push(`${entry.rtt_ms} ms round trip`);
  }
  const detail = parts.length ? ` (${parts.join(", ")})` : "";
  return `Connection: ${entry.level}${detail}`;
}

/** The badge for `entry` ({level, loss_pct, rtt_ms}), or null when nothing is measured. */
export function qualityBadge(entry) {
  if (!entry || !WORDS[entry.level]) {
    return null;
  }
  const bars = el(
    "span",
    { class: "bars", "aria-hidden": "true" },
    [1, 2, 3].map((bar) => el("i", { class: bar <= BARS[entry.level] ? "lit" : "" })),
  );
  return el(
    "span",
    {
      class: "quality",
      title: describeQuality(entry),
      dataset: { testid: "quality", quality: entry.level },
    },
    bars,
    el("span", { class: "visually-hidden" }, "Connection: "),
    WORDS[entry.level],
  );
}

/** The badge of a tile whose video is withheld for bandwidth. */
export function pausedBadge() {
  return el("span", { class: "state paused", dataset: { state: "paused" } }, "Poor connection");
}
