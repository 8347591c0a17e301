// The rules a new password must meet, as the server applies them (GET /api/password/rules):
// stated next to every field for a new password before the first attempt, in one wording.
// Each such field's hint carries data-password-rules (and is named by the field's
// aria-describedby, so screen readers read it with the field).

import { api } from "./api.js";

export async function showPasswordRules() {
  const hints = [...document.querySelectorAll("[data-password-rules]")];
  if (!hints.length) {
    return;
  }
  let answer;
  try {
    answer = await api("GET", "/api/password/rules");
  } catch {
    return; // the hint's own text stays; the server states the rules when it refuses
  }
  for (const hint of hints) {
    hint.textContent = answer.rules;
  }
}
