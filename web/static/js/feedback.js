// Error regions and busy states shared by every form.

/** Shows `error` (an ApiError or any Error) in an alert region. */
export function showError(region, error) {
  let message = error && error.message ? error.message : String(error);
  if (error && error.code === "rate_limited") {
    const wait = error.retryAfter;
    if (wait !== null && wait !== undefined) {
      const minutes = Math.ceil(wait / 60);
      message += wait >= 90 ? ` You can try again in about ${minutes} minutes.` : ` You can try again in ${wait} seconds.`;
    }
  }
  region.textContent = message;
  region.hidden = false;
  region.scrollIntoView({ block: "nearest" });
}

export function clearError(region) {
  region.textContent = "";
  region.hidden = true;
}

/**
 * Runs `action` while the form's submit buttons are disabled and marked busy; errors go to
 * `region`. Resolves to the action's result, or undefined when it failed.
 */
export async function submitting(form, region, action) {
  clearError(region);
  const buttons = form.querySelectorAll("button[type=submit], button:not([type])");
  for (const button of buttons) {
    button.disabled = true;
  }
  form.setAttribute("aria-busy", "true");
  try {
    return await action();
  } catch (error) {
    showError(region, error);
    return undefined;
  } finally {
    form.removeAttribute("aria-busy");
    for (const button of buttons) {
      button.disabled = false;
    }
  }
}
