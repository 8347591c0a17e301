// The "Fees and invoices" section of the case page. The neutral sets the fee terms, sees who
// accepted which version, issues invoices from the sessions held (lines edited by hand), and
// records payments received outside Caucus or credits an open invoice; a party reads the terms
// with their share and accepts exactly the version shown; counsel reads their client's invoices.

import { api } from "./api.js";
import { byId, el, formatDate } from "./dom.js";
import { clearError, showError, submitting } from "./feedback.js";
import {
  CURRENCIES,
  WHOLE,
  amountInput,
  formatMoney,
  formatPercent,
  formatQuantity,
  invoiceStatusName,
  parseAmount,
  parsePercent,
  parseQuantity,
  percentInput,
} from "./money.js";

const NEUTRAL_ROLES = ["neutral", "co_neutral"];
const RATE_KIND_NAMES = { hourly: "per hour", per_session: "per session" };

/**
 * Fills the Fees and invoices section for the viewer's `role` in the case; `members` are the
 * case's people (from GET /api/cases/{id}) and `userId` is the viewer's account.
 */
export async function showFees(caseId, { role, members, userId }) {
  const casePath = `/api/cases/${encodeURIComponent(caseId)}`;
  const neutral = NEUTRAL_ROLES.includes(role);
  const party = role === "party";
  if (!neutral && !party && role !== "counsel") {
    return; // observers see no money
  }
  byId("fees-section").hidden = false;
  byId("fees-neutral").hidden = !neutral;
  byId("fees-party").hidden = !party;
  byId("invoice-actions-heading").hidden = !neutral;
  if (role === "counsel") {
    byId("invoices-heading").textContent = "Your client's invoices";
  } else if (party) {
    byId("invoices-heading").textContent = "Your invoices";
  }

  const parties = members.filter((member) => member.role === "party");
  const nameOf = (id) => {
    const member = members.find((candidate) => String(candidate.user_id) === String(id));
    return member ? member.display_name : String(id);
  };
  let agreement = null;

  // -- the invoices of the case ---------------------------------------------------------------
  const paymentForm = byId("payment-form");
  let paying = null; // the invoice a payment is being recorded for

  function invoiceActions(invoice) {
    if (!neutral || invoice.kind !== "invoice" || invoice.status !== "open") {
      return [];
    }
    const record = el("button", { type: "button", class: "quiet", dataset: { testid: "invoice-record-payment" } }, "Record a payment");
    record.addEventListener("click", () => {
      paying = invoice;
      clearError(byId("payment-error"));
      byId("payment-invoice").textContent = invoice.number;
      byId("payment-currency").textContent = invoice.currency;
      byId("payment-amount").value = amountInput(invoice.due, invoice.currency);
      byId("payment-note").value = "";
      paymentForm.hidden = false;
      byId("payment-amount").focus();
    });
    const buttons = [record];
    if (invoice.paid === 0) {
      const credit = el("button", { type: "button", class: "quiet danger", dataset: { testid: "invoice-credit" } }, "Credit");
      credit.addEventListener("click", async () => {
        if (!window.confirm(`Cancel invoice ${invoice.number} with a credit note for ${formatMoney(-invoice.total, invoice.currency)}?`)) {
          return;
        }
        credit.disabled = true;
        clearError(byId("invoices-error"));
        try {
          await api("POST", `${casePath}/invoices/${encodeURIComponent(invoice.id)}/credit`);
          await loadInvoices();
        } catch (error) {
          showError(byId("invoices-error"), error);
          credit.disabled = false;
        }
      });
      buttons.push(credit);
    }
    return buttons;
  }

  async function loadInvoices() {
    const { invoices } = await api("GET", `${casePath}/invoices`);
    byId("no-invoices").hidden = invoices.length > 0;
    byId("invoice-table").hidden = invoices.length === 0;
    byId("invoice-rows").replaceChildren(
      ...invoices.map((invoice) =>
        el(
          "tr",
          { dataset: { testid: "invoice-row", number: invoice.number, payer: String(invoice.payer_id), status: invoice.status } },
          el(
            "td",
            {},
            el("a", { href: `/invoices/${encodeURIComponent(invoice.id)}`, dataset: { testid: "invoice-link" } }, invoice.number),
            invoice.kind === "credit_note" ? el("span", { class: "tag" }, "Credit note") : null,
          ),
          el("td", {}, invoice.payer_name),
          el("td", { dataset: { testid: "invoice-total" } }, formatMoney(invoice.total, invoice.currency)),
          el("td", { dataset: { testid: "invoice-paid" } }, formatMoney(invoice.paid, invoice.currency)),
          el("td", { dataset: { testid: "invoice-status" } }, invoiceStatusName(invoice.status)),
          neutral ? el("td", {}, ...invoiceActions(invoice)) : null,
        ),
      ),
    );
  }

  byId("payment-cancel").addEventListener("click", () => {
    paying = null;
    paymentForm.hidden = true;
  });
  paymentForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const region = byId("payment-error");
    if (paying === null) {
      return;
    }
    let amount;
    try {
      amount = parseAmount(byId("payment-amount").value, paying.currency);
    } catch (error) {
      showError(region, error);
      byId("payment-amount").focus();
      return;
    }
    if (amount <= 0) {
      showError(region, new Error("A payment is more than 0."));
      return;
    }
    const body = { amount, note: byId("payment-note").value.trim() };
    const path = `${casePath}/invoices/${encodeURIComponent(paying.id)}/payments`;
    const answer = await submitting(paymentForm, region, () => api("POST", path, body));
    if (answer) {
      paying = null;
      paymentForm.hidden = true;
      await loadInvoices();
    }
  });

  // -- the neutral's fee terms ------------------------------------------------------------------
  function currency() {
    return byId("terms-currency").value;
  }

  function shareInputs() {
    return [...byId("share-fields").querySelectorAll("input[data-user-id]")];
  }

  function showShareSum() {
    let sum = 0;
    let readable = true;
    for (const input of shareInputs()) {
      try {
        sum += parsePercent(input.value);
      } catch {
        readable = false;
      }
    }
    const text = readable ? formatPercent(sum) : "not a number yet";
    byId("share-sum").textContent = text;
    byId("share-sum").classList.toggle("field-error", !readable || sum !== WHOLE);
  }

  function defaultShares() {
    // equal shares in whole basis points, the first party taking what does not divide
    const each = Math.floor(WHOLE / Math.max(parties.length, 1));
    return parties.map((member, index) => (index === 0 ? WHOLE - each * (parties.length - 1) : each));
  }

  function fillTermsForm() {
    const terms = agreement ? agreement.terms : null;
    const select = byId("terms-currency");
    if (select.options.length === 0) {
      select.append(...Object.keys(CURRENCIES).map((code) => el("option", { value: code }, code)));
    }
    select.value = terms ? terms.currency : "USD";
    byId("terms-rate-kind").value = terms ? terms.rate_kind : "hourly";
    byId("terms-rate").value = terms ? amountInput(terms.rate, terms.currency) : "";
    byId("terms-deposit").value = terms ? amountInput(terms.deposit, terms.currency) : "0";
    byId("terms-tax").value = terms ? percentInput(terms.tax_basis_points) : "0";
    byId("terms-payment-days").value = String(terms ? terms.payment_days : 14);
    byId("terms-cancellation-hours").value = String(terms ? terms.cancellation_hours : 48);
    byId("terms-cancellation").value = terms ? terms.cancellation_terms : "";
    byId("terms-seller-name").value = terms ? terms.seller_name : "";
    byId("terms-seller-address").value = terms ? terms.seller_address : "";

    const defaults = defaultShares();
    byId("no-parties").hidden = parties.length > 0;
    byId("share-fields").replaceChildren(
      ...parties.map((member, index) => {
        const id = `share-${index}`;
        const saved = terms ? terms.shares.find((share) => String(share.user_id) === String(member.user_id)) : null;
        const input = el("input", {
          id,
          type: "text",
          inputmode: "decimal",
          autocomplete: "off",
          value: percentInput(saved ? saved.basis_points : terms ? 0 : defaults[index]),
          dataset: { userId: String(member.user_id), testid: "share-input" },
        });
        input.addEventListener("input", showShareSum);
        return el("div", { class: "field" }, el("label", { for: id }, `${member.display_name} (%)`), input);
      }),
    );
    const remainder = byId("terms-remainder");
    remainder.replaceChildren(...parties.map((member) => el("option", { value: String(member.user_id) }, member.display_name)));
    if (terms && parties.some((member) => String(member.user_id) === String(terms.remainder_to))) {
      remainder.value = String(terms.remainder_to);
    }
    showShareSum();
  }

  function showAcceptances() {
    const list = byId("acceptances");
    if (agreement === null) {
      byId("terms-version").textContent = "No terms set yet. Each party accepts the terms before invoices go out.";
      list.replaceChildren(el("li", { class: "empty" }, "Nobody has terms to accept yet."));
      return;
    }
    byId("terms-version").textContent =
      `Version ${agreement.version}. Every change makes a new version, which each party accepts again.`;
    const sharing = agreement.terms.shares.filter((share) => share.basis_points > 0);
    list.replaceChildren(
      ...sharing.map((share) => {
        const when = agreement.accepted[share.user_id];
        return el(
          "li",
          { dataset: { testid: "acceptance", userId: String(share.user_id), accepted: when ? "yes" : "no" } },
          el("span", { class: "member-name" }, nameOf(share.user_id)),
          el("span", { class: "tag" }, formatPercent(share.basis_points)),
          el(
            "span",
            { class: "hint" },
            when
              ? `accepted version ${agreement.version} on ${formatDate(when, { withTime: true })}`
              : `has not accepted version ${agreement.version} yet`,
          ),
        );
      }),
    );
  }

  function readTerms() {
    const code = currency();
    const field = (id, read, what) => {
      try {
        return read(byId(id).value);
      } catch (error) {
        byId(id).focus();
        throw new Error(`${what}: ${error.message}`);
      }
    };
    const whole = (id, what, max) => {
      const value = Number(byId(id).value);
      if (byId(id).value.trim() === "" || !Number.isInteger(value) || value < 0 || value > max) {
        byId(id).focus();
        throw new Error(`${what}: a whole number from 0 to ${max}.`);
      }
      return value;
    };
    const shares = shareInputs().map((input) => {
      const label = input.closest(".field").querySelector("label").textContent;
      try {
        return { user_id: input.dataset.userId, basis_points: parsePercent(input.value) };
      } catch (error) {
        input.focus();
        throw new Error(`${label}: ${error.message}`);
      }
    });
    if (shares.length === 0) {
      throw new Error("Invite the parties before setting fees: each party has a share.");
    }
    const sum = shares.reduce((total, share) => total + share.basis_points, 0);
    if (sum !== WHOLE) {
      throw new Error(`The shares make ${formatPercent(sum)}; together they must make 100 %.`);
    }
    const sellerName = byId("terms-seller-name").value.trim();
    if (!sellerName) {
      byId("terms-seller-name").focus();
      throw new Error("Name who issues the invoices (you or your practice).");
    }
    return {
      currency: code,
      rate_kind: byId("terms-rate-kind").value,
      rate: field("terms-rate", (text) => parseAmount(text, code), "Rate"),
      deposit: field("terms-deposit", (text) => parseAmount(text || "0", code), "Deposit"),
      tax_basis_points: field("terms-tax", (text) => parsePercent(text || "0"), "Tax rate"),
      payment_days: whole("terms-payment-days", "Payment due", 365),
      cancellation_hours: whole("terms-cancellation-hours", "Free cancellation", 1440),
      cancellation_terms: byId("terms-cancellation").value.trim(),
      seller_name: sellerName,
      seller_address: byId("terms-seller-address").value.trim(),
      shares,
      remainder_to: byId("terms-remainder").value,
    };
  }

  const termsForm = byId("terms-form");
  termsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const region = byId("terms-error");
    byId("terms-saved").hidden = true;
    let body;
    try {
      body = readTerms();
    } catch (error) {
      showError(region, error);
      return;
    }
    const answer = await submitting(termsForm, region, () => api("PUT", `${casePath}/fees`, body));
    if (answer) {
      agreement = answer.agreement;
      showAcceptances();
      byId("terms-saved").textContent = `Saved as version ${agreement.version}. The parties accept it on this page.`;
      byId("terms-saved").hidden = false;
    }
  });

  // -- the neutral's invoice lines ------------------------------------------------------------
  const issueForm = byId("issue-form");
  let lineCount = 0;

  function draftCurrency() {
    return agreement ? agreement.terms.currency : currency();
  }

  function lineRow(line) {
    lineCount += 1;
    const n = lineCount;
    const code = draftCurrency();
    const hourly = agreement && agreement.terms.rate_kind === "hourly";
    const description = el("input", { id: `line-description-${n}`, type: "text", maxlength: "200", value: line.description, dataset: { testid: "line-description" } });
    const quantity = el("input", {
      id: `line-quantity-${n}`,
      type: "text",
      inputmode: "decimal",
      autocomplete: "off",
      value: formatQuantity(line.quantity_thousandths),
      dataset: { testid: "line-quantity" },
    });
    const unit = el("input", {
      id: `line-unit-${n}`,
      type: "text",
      inputmode: "decimal",
      autocomplete: "off",
      value: amountInput(line.unit_amount, code),
      dataset: { testid: "line-unit" },
    });
    const remove = el("button", { type: "button", class: "quiet remove", dataset: { testid: "line-remove" } }, "Remove");
    const row = el(
      "div",
      { class: "row", dataset: { testid: "draft-line" } },
      el("div", { class: "field" }, el("label", { for: description.id }, "Description"), description),
      el("div", { class: "field" }, el("label", { for: quantity.id }, hourly ? "Hours" : "Quantity"), quantity),
      el("div", { class: "field" }, el("label", { for: unit.id }, `Unit amount (${code})`), unit),
      remove,
    );
    remove.addEventListener("click", () => {
      row.remove();
      showDraftTotal();
    });
    for (const input of [quantity, unit]) {
      input.addEventListener("input", showDraftTotal);
    }
    return row;
  }

  function lineRows() {
    return [...byId("draft-lines").querySelectorAll("[data-testid=draft-line]")];
  }

  function readLine(row) {
    const code = draftCurrency();
    const [description, quantity, unit] = row.querySelectorAll("input");
    const text = description.value.trim();
    if (!text) {
      description.focus();
      throw new Error("Each line needs a description.");
    }
    let quantityThousandths;
    let unitAmount;
    try {
      quantityThousandths = parseQuantity(quantity.value);
    } catch (error) {
      quantity.focus();
      throw new Error(`${text}: ${error.message}`);
    }
    try {
      unitAmount = parseAmount(unit.value, code);
    } catch (error) {
      unit.focus();
      throw new Error(`${text}: ${error.message}`);
    }
    return { description: text, quantity_thousandths: quantityThousandths, unit_amount: unitAmount };
  }

  function showDraftTotal() {
    const code = draftCurrency();
    let total = 0;
    for (const row of lineRows()) {
      const [, quantity, unit] = row.querySelectorAll("input");
      try {
        // the server's rounding: half away from zero, to a minor unit
        const exact = parseAmount(unit.value, code) * parseQuantity(quantity.value);
        total += Math.floor((exact + 500) / 1000);
      } catch {
        byId("draft-total").textContent = "not every line is complete";
        return;
      }
    }
    byId("draft-total").textContent = formatMoney(total, code);
  }

  byId("draft-load").addEventListener("click", async () => {
    const region = byId("fees-error");
    clearError(region);
    try {
      const { lines } = await api("GET", `${casePath}/invoices/draft`);
      byId("draft-lines").replaceChildren(...lines.map(lineRow));
      byId("no-draft-lines").hidden = lines.length > 0;
      clearError(byId("issue-error"));
      issueForm.hidden = false;
      showDraftTotal();
      if (lines.length === 0) {
        byId("draft-add").click();
      }
    } catch (error) {
      showError(region, error);
    }
  });

  byId("draft-add").addEventListener("click", () => {
    const rate = agreement ? agreement.terms.rate : 0;
    const row = lineRow({ description: "", quantity_thousandths: 1000, unit_amount: rate });
    byId("draft-lines").append(row);
    row.querySelector("input").focus();
    showDraftTotal();
  });

  byId("draft-cancel").addEventListener("click", () => {
    issueForm.hidden = true;
  });

  issueForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const region = byId("issue-error");
    let lines;
    try {
      lines = lineRows().map(readLine);
      if (lines.length === 0) {
        throw new Error("Add at least one line.");
      }
    } catch (error) {
      showError(region, error);
      return;
    }
    const answer = await submitting(issueForm, region, () => api("POST", `${casePath}/invoices`, { lines }));
    if (answer) {
      issueForm.hidden = true;
      byId("draft-lines").replaceChildren();
      await loadInvoices();
    }
  });

  // -- the party's view of the terms ----------------------------------------------------------
  const acceptForm = byId("accept-form");
  let shown = null; // the version and digest the party is reading

  function showPartyTerms() {
    byId("no-terms").hidden = agreement !== null;
    byId("party-terms").hidden = agreement === null;
    if (agreement === null) {
      shown = null;
      return;
    }
    const terms = agreement.terms;
    shown = { version: agreement.version, digest: agreement.digest };
    const money = (amount) => formatMoney(amount, terms.currency);
    const row = (term, text, testid) => [el("dt", {}, term), el("dd", { dataset: { testid } }, text)];
    byId("party-terms-version").textContent = `Version ${agreement.version}`;
    byId("party-terms-details").replaceChildren(
      ...row("Fee", `${money(terms.rate)} ${RATE_KIND_NAMES[terms.rate_kind] || terms.rate_kind}`, "terms-fee"),
      ...row("Your share", formatPercent(agreement.my_share || 0), "terms-my-share"),
      ...(terms.deposit ? row("Deposit", `${money(terms.deposit)} before the first session`, "terms-deposit-text") : []),
      ...row("Tax", formatPercent(terms.tax_basis_points), "terms-tax-text"),
      ...row("Payment", `Due ${terms.payment_days} days after an invoice is issued`, "terms-payment-text"),
      ...row(
        "Cancellation",
        [`Free up to ${terms.cancellation_hours} hours before a session.`, terms.cancellation_terms].filter(Boolean).join(" "),
        "terms-cancellation-text",
      ),
      ...row("Invoices from", [terms.seller_name, terms.seller_address].filter(Boolean).join(", "), "terms-seller-text"),
    );
    const when = agreement.accepted[userId];
    byId("party-accepted").hidden = !when;
    if (when) {
      byId("party-accepted").textContent = `You accepted version ${agreement.version} on ${formatDate(when, { withTime: true })}.`;
    }
    acceptForm.hidden = Boolean(when);
  }

  async function loadTerms() {
    const answer = await api("GET", `${casePath}/fees`);
    agreement = answer.agreement;
    if (neutral) {
      fillTermsForm();
      showAcceptances();
    } else if (party) {
      showPartyTerms();
    }
  }

  acceptForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const region = byId("accept-error");
    const name = byId("billing-name").value.trim();
    if (!name) {
      showError(region, new Error("Give the name your invoices are made out to."));
      byId("billing-name").focus();
      return;
    }
    if (shown === null) {
      return;
    }
    const body = { ...shown, billing_name: name, billing_address: byId("billing-address").value.trim() };
    const answer = await submitting(acceptForm, region, async () => {
      try {
        return await api("POST", `${casePath}/fees/accept`, body);
      } catch (error) {
        if (error.code === "terms_changed") {
          await loadTerms(); // show the terms as they are now; the party reads them again
        }
        throw error;
      }
    });
    if (answer) {
      agreement = answer.agreement;
      showPartyTerms();
    }
  });

  // -- first load -------------------------------------------------------------------------------
  try {
    await loadTerms();
  } catch (error) {
    showError(byId("fees-error"), error);
  }
  try {
    await loadInvoices();
  } catch (error) {
    showError(byId("invoices-error"), error);
  }
}
