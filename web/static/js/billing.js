// /billing: the neutral's ledger, every invoice and credit note they issued across their cases,
// with what is outstanding per currency and the whole ledger as a CSV file.

import { api, requireStage } from "./api.js";
import { byId, el, formatDate } from "./dom.js";
import { showError } from "./feedback.js";
import { renderHeader } from "./header.js";
import { formatMoney, invoiceStatusName } from "./money.js";

const session = await requireStage("active");
renderHeader(session);
byId("main").hidden = false;

function outstanding(invoices) {
  const due = new Map();
  for (const invoice of invoices) {
    if (invoice.status === "open") {
      due.set(invoice.currency, (due.get(invoice.currency) || 0) + invoice.due);
    }
  }
  return [...due.entries()].map(([currency, amount]) => formatMoney(amount, currency));
}

try {
  const { invoices } = await api("GET", "/api/billing/ledger");
  byId("no-ledger").hidden = invoices.length > 0;
  byId("ledger-table").hidden = invoices.length === 0;
  const open = outstanding(invoices);
  byId("ledger-totals").textContent = open.length ? `Outstanding: ${open.join(", ")}.` : "Nothing is outstanding.";
  byId("ledger-totals").hidden = invoices.length === 0;
  byId("ledger-rows").replaceChildren(
    ...invoices.map((invoice) =>
      el(
        "tr",
        { dataset: { testid: "ledger-row", number: invoice.number, status: invoice.status } },
        el(
          "td",
          {},
          el("a", { href: `/invoices/${encodeURIComponent(invoice.id)}` }, invoice.number),
          invoice.kind === "credit_note" ? el("span", { class: "tag" }, "Credit note") : null,
        ),
        el("td", {}, formatDate(invoice.issued_at)),
        el("td", {}, el("a", { href: `/cases/${encodeURIComponent(invoice.case_id)}` }, invoice.case_reference)),
        el("td", {}, invoice.payer_name),
        el("td", {}, formatMoney(invoice.total, invoice.currency)),
        el("td", {}, formatMoney(invoice.paid, invoice.currency)),
        el("td", {}, invoiceStatusName(invoice.status)),
      ),
    ),
  );
} catch (error) {
  showError(byId("page-error"), error);
}
