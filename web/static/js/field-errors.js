// Errors shown next to the field they are about: the field is marked invalid and described by
// the message, so a screen reader reads both together.

import { el } from "./dom.js";

let errorCount = 0;

/** Marks `input` invalid with `message` under it. */
export function markField(input, message) {
  const field = input.closest(".field") || input.parentElement;
  let note = field.querySelector(":scope > .field-error");
  if (note === null) {
    errorCount += 1;
    note = el("p", { class: "field-error", id: `field-error-${errorCount}`, dataset: { testid: "field-error" } });
    field.append(note);
  }
  note.textContent = message;
  input.setAttribute("aria-invalid", "true");
  const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(note.id)) {
    input.setAttribute("aria-describedby", [...described, note.id].join(" "));
  }
}

/** Removes every field error inside `root`. */
export function clearFields(root) {
  for (const note of root.querySelectorAll(".field-error")) {
    const input = root.querySelector(`[aria-describedby~="${note.id}"]`);
    if (input !== null) {
      const rest = input.getAttribute("aria-describedby").split(" ").filter((id) => id && id !== note.id);
      if (rest.length) {
        input.setAttribute("aria-describedby", rest.join(" "));
      } else {
        input.removeAttribute("aria-describedby");
      }
      input.removeAttribute("aria-invalid");
    }
    note.remove();
  }
  for (const input of root.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
  }
}

/**
 * The field paths a server's validation message names ("Invalid request: parties.1.email: value
 * is not a valid email address; title: …"), as [path, text] pairs.
 */
export function pathsInMessage(message) {
  const found = [];
  const text = String(message || "").replace(/^Invalid request:\s*/, "");
  for (const part of text.split("; ")) {
    const match = /^([a-z_]+(?:\.\d+)?(?:\.[a-z_]+)?): (.+)$/.exec(part.trim());
    if (match) {
      found.push([match[1], match[2].replace(/\.$/, "")]);
    }
  }
  return found;
}
