// /invoices/{invoice_id}: one invoice or credit note as its payer, their counsel or the neutral
// reads it: lines, totals, what was paid and is due, the payments; its PDF and printable view;
// a link to pay by card when the reader is its payer and something is due.

import { api, requireStage } from "./api.js";
import { byId, el, formatDate } from "./dom.js";
import { showError } from "./feedback.js";
import { renderHeader } from "./header.js";
import { formatMoney, formatPercent, formatQuantity, invoiceStatusName } from "./money.js";

const invoiceId = decodeURIComponent(window.location.pathname.replace(/^\/invoices\//, "").replace(/\/$/, ""));
const invoicePath = `/api/invoices/${encodeURIComponent(invoiceId)}`;
byId("pdf-link").href = `${invoicePath}/pdf`;
byId("view-link").href = `/invoices/${encodeURIComponent(invoiceId)}/view`;
byId("pay-link").href = `/invoices/${encodeURIComponent(invoiceId)}/pay`;

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

const METHOD_NAMES = { card: "Card", offline: "Recorded by the neutral" };
const PAYMENT_STATUS_NAMES = { created: "Started", succeeded: "Received", failed: "Failed", refunded: "Refunded" };

function pair(term, text, testid) {
  return [el("dt", {}, term), el("dd", { dataset: { testid } }, text)];
}

function render(invoice, canPay) {
  const money = (amount) => formatMoney(amount, invoice.currency);
  const credit = invoice.kind === "credit_note";
  const title = `${credit ? "Credit note" : "Invoice"} ${invoice.number}`;
  document.title = `${title} · Caucus`;
  byId("invoice-title").textContent = title;
  byId("invoice-status").textContent = invoiceStatusName(invoice.status);
  byId("invoice-status").dataset.status = invoice.status;
  byId("case-link").href = `/cases/${encodeURIComponent(invoice.case_id)}`;
  byId("case-link").hidden = false;
  byId("pay-link").hidden = !canPay;

  byId("invoice-details").replaceChildren(
    ...pair("Issued", formatDate(invoice.issued_at), "invoice-issued"),
    ...(invoice.due_at ? pair("Due by", formatDate(invoice.due_at), "invoice-due-at") : []),
    ...pair("To", invoice.payer_name, "invoice-payer"),
    ...pair("Case", invoice.case_reference, "invoice-case"),
    ...pair("Share", `${formatPercent(invoice.share_basis_points)} of the fees`, "invoice-share"),
  );
  byId("invoice-amounts").replaceChildren(
    ...pair("Fees", money(invoice.subtotal), "invoice-subtotal"),
    ...pair(`Tax (${formatPercent(invoice.tax_basis_points)})`, money(invoice.tax_amount), "invoice-tax"),
    ...pair("Total", money(invoice.total), "invoice-total"),
    ...(credit ? [] : pair("Paid", money(invoice.paid), "invoice-paid")),
    ...(credit ? [] : pair("Due", money(invoice.due), "invoice-due")),
  );
  byId("invoice-line-rows").replaceChildren(
    ...invoice.lines.map((line) =>
      el(
        "tr",
        { dataset: { testid: "invoice-line" } },
        el("td", {}, line.description),
        el("td", {}, formatQuantity(line.quantity_thousandths)),
        el("td", {}, money(line.unit_amount)),
        el("td", {}, money(line.amount)),
      ),
    ),
  );
  byId("no-payments").hidden = invoice.payments.length > 0;
  byId("invoice-payments").replaceChildren(
    ...invoice.payments.map((payment) =>
      el(
        "li",
        { dataset: { testid: "invoice-payment", method: payment.method, status: payment.status } },
        el("span", { class: "member-name" }, money(payment.amount)),
        el("span", { class: "tag" }, PAYMENT_STATUS_NAMES[payment.status] || payment.status),
        el("span", { class: "hint" }, [METHOD_NAMES[payment.method] || payment.method, payment.settled_at ? formatDate(payment.settled_at, { withTime: true }) : null, payment.note].filter(Boolean).join(" · ")),
      ),
    ),
  );
  byId("invoice-content").hidden = false;
}

try {
  const answer = await api("GET", invoicePath);
  render(answer.invoice, answer.can_pay);
} catch (error) {
  showError(byId("page-error"), error);
}
