// Choosing up to a few open times: slots grouped by day in the viewer's zone, each also read
// in a second zone (the neutral's or the requester's), so nobody converts times in their head.

import { el } from "./dom.js";
import { dayKey, formatDay, formatInstant, formatTime, zoneLabel } from "./zoned-time.js";

/** The chosen instants (Unix seconds), at most `max`; every picker showing it stays in step. */
export class SlotSelection {
  constructor(max = 3) {
    this.max = max;
    this.chosen = new Set();
    this.listeners = new Map();
  }

  has(epoch) {
    return this.chosen.has(epoch);
  }

  get full() {
    return this.chosen.size >= this.max;
  }

  /** Adds or removes `epoch`; answers false when adding would pass the maximum. */
  set(epoch, on) {
    if (on && !this.chosen.has(epoch) && this.full) {
      return false;
    }
    if (on) {
      this.chosen.add(epoch);
    } else {
      this.chosen.delete(epoch);
    }
    this.changed();
    return true;
  }

  /** Keeps only the chosen instants that are still in `available`. */
  keepOnly(available) {
    const open = new Set(available);
    for (const epoch of [...this.chosen]) {
      if (!open.has(epoch)) {
        this.chosen.delete(epoch);
      }
    }
    this.changed();
  }

  clear() {
    this.chosen.clear();
    this.changed();
  }

  values() {
    return [...this.chosen].sort((a, b) => a - b);
  }

  /** Calls `listener` on every change; one listener per `key` (a container re-rendered replaces its own). */
  watch(key, listener) {
    this.listeners.set(key, listener);
  }

  changed() {
    for (const listener of this.listeners.values()) {
      listener();
    }
  }
}

/**
 * Shows `slots` in `container` as checkboxes (data-testid `testid`, data-starts-at the instant)
 * grouped by day in `zone`; each also read in `otherZone` when that differs. `note(epoch)` may
 * add a short text to a slot (who proposed it, say).
 */
export function renderSlots(container, slots, selection, { zone, otherZone = null, testid = "slot", note = null }) {
  const showOther = otherZone && otherZone !== zone;
  const days = new Map();
  for (const epoch of [...slots].sort((a, b) => a - b)) {
    const key = dayKey(epoch, zone);
    if (!days.has(key)) {
      days.set(key, []);
    }
    days.get(key).push(epoch);
  }
  if (days.size === 0) {
    container.replaceChildren(el("p", { class: "empty", dataset: { testid: `${testid}-none` } }, "No open times in these days."));
    selection.watch(container, () => {});
    return;
  }
  const boxes = [];
  const groups = [...days.entries()].map(([, epochs]) => {
    const labels = epochs.map((epoch) => {
      const box = el("input", { type: "checkbox", value: String(epoch), dataset: { testid, startsAt: String(epoch) } });
      box.checked = selection.has(epoch);
      box.addEventListener("change", () => {
        if (!selection.set(epoch, box.checked)) {
          box.checked = false;
        }
      });
      boxes.push(box);
      const extra = note ? note(epoch) : null;
      return el(
        "label",
        { class: "slot" },
        box,
        el("span", { class: "slot-time" }, formatTime(epoch, zone)),
        showOther ? el("span", { class: "slot-other" }, `${formatInstant(epoch, otherZone)} ${zoneLabel(otherZone)}`) : null,
        extra ? el("span", { class: "slot-note" }, extra) : null,
      );
    });
    return el(
      "fieldset",
      { class: "slot-day" },
      el("legend", {}, formatDay(epochs[0], zone)),
      el("div", { class: "slot-grid" }, labels),
    );
  });
  container.replaceChildren(...groups);
  const sync = () => {
    for (const box of boxes) {
      const epoch = Number(box.value);
      box.checked = selection.has(epoch);
      box.disabled = !box.checked && selection.full;
    }
  };
  selection.watch(container, sync);
  sync();
}

/** "2 of 3 chosen: Tue 5 Jan, 10:00; …" for a status line under a picker. */
export function describeSelection(selection, zone) {
  const chosen = selection.values();
  if (chosen.length === 0) {
    return `Choose up to ${selection.max} times.`;
  }
  return `${chosen.length} of ${selection.max} chosen: ${chosen.map((epoch) => formatInstant(epoch, zone)).join("; ")}.`;
}
