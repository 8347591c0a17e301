// /login: username and password; then on to the second factor, the password change, or the case list.

import { api, continueFromStage, getSession, pageForStage, nextPath } from "./api.js";
import { byId, focusUnlessBusy } from "./dom.js";
import { submitting } from "./feedback.js";

const form = byId("login-form");
const errorRegion = byId("form-error");

async function start() {
  const session = await getSession();
  if (session.stage !== "anonymous") {
    window.location.replace(pageForStage(session.stage) || nextPath());
    return;
  }
  focusUnlessBusy(byId("username"));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = byId("username").value.trim();
  const password = byId("password").value;
  if (!username || !password) {
    errorRegion.textContent = "Enter your username and password.";
    errorRegion.hidden = false;
    return;
  }
  const answer = await submitting(form, errorRegion, () =>
    api("POST", "/api/login", { username, password }),
  );
  if (answer) {
    await getSession({ refresh: true });
    continueFromStage(answer.stage);
  } else {
    byId("password").select();
  }
});

start();
