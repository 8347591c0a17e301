// /agreements/verify: anyone, with no account, checks a sealed agreement PDF against its
// signature file (POST /api/agreements/verify, multipart; the CSRF token comes from
// GET /api/session like every other write).

import { ApiError, getSession } from "./api.js";
import { byId, formatDate } from "./dom.js";
import { showError, submitting } from "./feedback.js";

const MAX_PDF = 20 * 1024 * 1024;
const MAX_SIGNATURE = 2048;

async function verify(pdf, signature) {
  const { csrf_token: csrfToken } = await getSession();
  const form = new FormData();
  form.append("pdf", pdf, pdf.name);
  form.append("signature", signature, signature.name);
  let response;
  try {
    response = await fetch("/api/agreements/verify", {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken },
      credentials: "same-origin",
      cache: "no-store",
      body: form,
    });
  } catch {
    throw new ApiError(0, "network_error", "The server could not be reached. Check your connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: said below
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : {};
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || `The server answered ${response.status}.`);
  }
  return body;
}

function showResult(result) {
  byId("verify-valid").hidden = !result.valid;
  byId("verify-invalid").hidden = result.valid;
  if (!result.valid) {
    byId("invalid-message").textContent = result.error.message;
    byId("verify-invalid").dataset.code = result.error.code;
    return;
  }
  byId("valid-summary").textContent = `This is the sealed agreement ${result.agreement_id}, version ${result.version}, unchanged since it was sealed.`;
  const times = result.signed_at || [];
  byId("valid-signed-at").textContent = times.length
    ? times.map((time) => formatDate(time, { withTime: true })).join("; ")
    : "Not known here any more (the seal log does not hold this agreement).";
  byId("valid-sealed-at").textContent = formatDate(result.sealed_at, { withTime: true });
  byId("valid-document-hash").textContent = result.document_sha256;
  byId("valid-pdf-hash").textContent = result.pdf_sha256;
  byId("valid-key-id").textContent = result.key_id;
  byId("valid-logged").textContent = result.logged
    ? "This installation's seal log still records sealing it, with the same fingerprints and signing times."
    : "This installation's seal log does not record it: the seal is valid, but the signing times cannot be confirmed here.";
}

const form = byId("verify-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  byId("verify-valid").hidden = true;
  byId("verify-invalid").hidden = true;
  const pdf = byId("verify-pdf").files[0];
  const signature = byId("verify-signature").files[0];
  if (!pdf || !signature) {
    showError(byId("verify-error"), new Error("Choose both the PDF and its signature file."));
    return;
  }
  if (pdf.size > MAX_PDF) {
    showError(byId("verify-error"), new Error("A sealed PDF is at most 20 MiB: this file is not one."));
    return;
  }
  if (signature.size > MAX_SIGNATURE) {
    showError(byId("verify-error"), new Error("A signature file is a few hundred bytes: this file is not one."));
    return;
  }
  const result = await submitting(form, byId("verify-error"), () => verify(pdf, signature));
  if (result) {
    showResult(result);
  }
});
