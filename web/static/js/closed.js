// /closed: where a member's open case, space or live page goes when the neutral closes
// the case. An account made for that case alone is deleted with it (its session too), so
// an anonymous visitor here is told that; nothing about the case or the person is kept.

import { getSession } from "./api.js";
import { byId } from "./dom.js";

let session = null;
try {
  session = await getSession({ refresh: true });
} catch {
  session = null;
}
const signedIn = Boolean(session && session.stage === "active");
byId("account-kept").hidden = !signedIn;
byId("account-removed").hidden = signedIn;
byId("sign-in-row").hidden = signedIn;
