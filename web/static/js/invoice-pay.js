// /invoices/{invoice_id}/pay: the payer pays what is due by card. The server starts a payment
// (POST /api/invoices/{id}/pay, answering the provider's client secret); the provider's own card
// fields (Stripe.js, loaded from the address the server names and allowed by this page's own
// Content-Security-Policy) take the card and confirm. The payment counts only once the provider's
// signed webhook reached the server, so after confirming the page asks the server until the
// invoice reads paid.

import { api, requireStage } from "./api.js";
import { byId } from "./dom.js";
import { clearError, showError } from "./feedback.js";
import { formatMoney } from "./money.js";

const invoiceId = decodeURIComponent(window.location.pathname.replace(/^\/invoices\//, "").replace(/\/pay\/?$/, ""));
const invoicePath = `/api/invoices/${encodeURIComponent(invoiceId)}`;
byId("invoice-link").href = `/invoices/${encodeURIComponent(invoiceId)}`;

/** How often, and for how long, the page asks whether the payment was confirmed. */
const POLL_MS = 1500;
const POLL_GIVE_UP_MS = 10 * 60 * 1000;

await requireStage("active");
byId("main").hidden = false;

function unavailable(text) {
  byId("pay-loading").hidden = true;
  byId("pay-unavailable").textContent = text;
  byId("pay-unavailable").hidden = false;
}

function showPaid(invoice) {
  byId("pay-loading").hidden = true;
  byId("pay-form").hidden = true;
  byId("pay-confirming").hidden = true;
  byId("pay-paid").textContent = `Invoice ${invoice.number} is paid: ${formatMoney(invoice.paid, invoice.currency)}. Thank you.`;
  byId("pay-paid").hidden = false;
}

/** Adds the provider's script to the page (a classic script: it finds its own address). */
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => reject(new Error("The payment provider's card form could not be loaded. Try again later.")));
    document.head.append(script);
  });
}

async function waitUntilPaid() {
  const started = Date.now();
  for (;;) {
    await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
    try {
      const { invoice } = await api("GET", invoicePath);
      if (invoice.status === "paid") {
        showPaid(invoice);
        return;
      }
    } catch {
      // a network hiccup: ask again
    }
    if (Date.now() - started > POLL_GIVE_UP_MS) {
      byId("pay-confirming").textContent =
        "The payment provider has not confirmed the payment yet. Nothing more is needed from you: the invoice shows the payment once it is confirmed.";
      return;
    }
  }
}

async function start() {
  const { invoice, can_pay: canPay } = await api("GET", invoicePath);
  byId("pay-title").textContent = `Pay invoice ${invoice.number}`;
  if (invoice.status === "paid") {
    showPaid(invoice);
    return;
  }
  if (!canPay) {
    unavailable("There is nothing for you to pay by card on this invoice.");
    return;
  }
  const config = await api("GET", "/api/payments/config");
  if (!config.card_payments) {
    unavailable("Card payments are not set up here. Pay as the invoice says.");
    return;
  }
  byId("pay-amount").textContent = `Due: ${formatMoney(invoice.due, invoice.currency)}`;
  byId("pay-amount").hidden = false;
  await loadScript(config.js_url);
  if (typeof window.Stripe !== "function") {
    throw new Error("The payment provider's card form could not be loaded. Try again later.");
  }
  const payment = await api("POST", `${invoicePath}/pay`);
  const stripe = window.Stripe(payment.publishable_key || config.publishable_key);
  const card = stripe.elements().create("card");
  card.mount(byId("card-element"));
  byId("pay-loading").hidden = true;
  const form = byId("pay-form");
  form.hidden = false;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const region = byId("pay-error");
    const submit = byId("pay-submit");
    clearError(region);
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    let result;
    try {
      result = await stripe.confirmCardPayment(payment.client_secret, { payment_method: { card } });
    } catch (error) {
      result = { error };
    } finally {
      form.removeAttribute("aria-busy");
    }
    if (result.error || !result.paymentIntent) {
      const message = result.error && result.error.message;
      showError(region, new Error(message || "The card payment did not go through. Check the card and try again."));
      submit.disabled = false;
      return;
    }
    form.hidden = true;
    byId("pay-confirming").hidden = false;
    await waitUntilPaid();
  });
}

try {
  await start();
} catch (error) {
  byId("pay-loading").hidden = true;
  showError(byId("page-error"), error);
}
