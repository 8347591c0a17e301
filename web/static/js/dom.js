// Builds DOM nodes without HTML strings: text is always set as text, never parsed.

/**
 * el("a", {href: "/cases", class: "link", dataset: {testid: "x"}}, "text", childNode)
 * Attributes whose value is null, undefined or false are left out; true sets an empty attribute.
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (name === "dataset") {
      for (const [key, data] of Object.entries(value)) {
        node.dataset[key] = data;
      }
    } else if (name === "class") {
      node.className = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Shorthand for document.getElementById that fails loudly when the page lacks the element. */
export function byId(id) {
  const node = document.getElementById(id);
  if (node === null) {
    throw new Error(`This page has no element #${id}.`);
  }
  return node;
}

const ROLE_NAMES = {
  admin: "Administrator",
  neutral: "Neutral",
  co_neutral: "Co-neutral",
  party: "Party",
  counsel: "Counsel",
  observer: "Observer",
};

/** A role as people read it. */
export function roleName(role) {
  return ROLE_NAMES[role] || String(role || "").replace(/_/g, " ");
}

const PROCESS_NAMES = { mediation: "Mediation", arbitration: "Arbitration", other: "Other process" };

export function processName(process) {
  return PROCESS_NAMES[process] || String(process || "");
}

const REQUEST_STATUS_NAMES = {
  pending: "Conflict check to decide",
  disclosed: "Waiting for consents",
  scheduling: "Agreeing the date",
  declined: "Declined",
  converted: "Case opened",
};

/** Where a request to a neutral stands, as the neutral reads it. */
export function requestStatusName(status) {
  return REQUEST_STATUS_NAMES[status] || humanize(status);
}

/** Upper-cases the first letter and turns underscores into spaces: "in_progress" → "In progress". */
export function humanize(word) {
  const text = String(word || "").replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A Date from a day ("2026-12-01"), an ISO timestamp or Unix time in seconds; null if none. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") {
    return null;
  }
  let date;
  if (typeof value === "number" || /^\d+(\.\d+)?$/.test(value)) {
    // The API writes instants as Unix time in seconds.
    date = new Date(Number(value) * 1000);
  } else if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    date = new Date(`${value}T00:00:00`);
  } else {
    date = new Date(value);
  }
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A date or instant in the reader's locale; the raw text when it does not parse. */
export function formatDate(value, { withTime = false } = {}) {
  const date = toDate(value);
  if (date === null) {
    return value === null || value === undefined ? "" : String(value);
  }
  const options = { year: "numeric", month: "long", day: "numeric" };
  if (withTime && !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    options.hour = "2-digit";
    options.minute = "2-digit";
  }
  return date.toLocaleString(undefined, options);
}

// Focus `node` once a page has loaded what it waited for, unless the person has already
// started typing somewhere: focus never jumps away from a field in use.
export function focusUnlessBusy(node) {
  const active = document.activeElement;
  if (active === null || active === document.body || active === document.documentElement) {
    node.focus();
  }
}
