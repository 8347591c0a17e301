// The person's private calendar feed address (all their cases' sessions): made, copied, renewed
// and stopped from the case page.

import { api } from "./api.js";
import { byId } from "./dom.js";
import { clearError, showError } from "./feedback.js";

/** Wires the calendar feed controls of the page. */
export async function showCalendarFeed() {
  const region = byId("feed-error");

  // Only a hash of the address is kept: it is shown once, when made; later the page can only
  // say that one exists.
  function render({ url, exists }) {
    const active = Boolean(url) || Boolean(exists);
    byId("feed-row").hidden = !url;
    byId("feed-url").textContent = url || "";
    byId("feed-exists").hidden = !active || Boolean(url);
    byId("feed-create").textContent = active ? "Make a new address" : "Create a feed address";
    byId("feed-revoke").hidden = !active;
    byId("feed-copy").textContent = "Copy";
  }

  async function act(button, method) {
    clearError(region);
    button.disabled = true;
    try {
      render(await api(method, "/api/calendar-feed"));
    } catch (error) {
      showError(region, error);
    } finally {
      button.disabled = false;
    }
  }

  byId("feed-create").addEventListener("click", (event) => act(event.currentTarget, "POST"));
  byId("feed-revoke").addEventListener("click", (event) => act(event.currentTarget, "DELETE"));
  byId("feed-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(byId("feed-url").textContent);
      byId("feed-copy").textContent = "Copied";
    } catch {
      byId("feed-copy").textContent = "Select the address and copy it";
    }
  });

  try {
    render(await api("GET", "/api/calendar-feed"));
  } catch (error) {
    showError(region, error);
  }
}
