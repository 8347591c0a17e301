// Money as the billing API speaks it: integer minor units of an ISO 4217 currency, shares in
// basis points (10,000 = 100 %) and quantities in thousandths. What people type ("300.00",
// "33.33", "1.5") is read here with integer arithmetic only; nothing goes through a float.
// The same rules as rooms/billing/money.py.

/** ISO 4217 code → number of decimals (the currencies Caucus bills in). */
export const CURRENCIES = {
  USD: 2,
  EUR: 2,
  GBP: 2,
  CAD: 2,
  AUD: 2,
  CHF: 2,
  JPY: 0,
  SEK: 2,
  NOK: 2,
  DKK: 2,
  NZD: 2,
  SGD: 2,
  HKD: 2,
  MXN: 2,
  BRL: 2,
  INR: 2,
  ZAR: 2,
  PLN: 2,
  CZK: 2,
  KWD: 3,
  BHD: 3,
};

/** Largest magnitude of an amount in minor units. */
export const MAX_MINOR_UNITS = 10 ** 13;
/** Basis points in 100 %. */
export const WHOLE = 10_000;
const MAX_QUANTITY_THOUSANDTHS = 10 ** 9;
const MAX_NUMBER_TEXT = 32;
const DECIMAL = /^([0-9]+)(?:\.([0-9]+))?$/;

/** The decimals of `currency`; throws for a currency Caucus does not bill in. */
export function decimalsOf(currency) {
  const code = String(currency || "").toUpperCase();
  if (!Object.hasOwn(CURRENCIES, code)) {
    throw new Error(`Caucus does not bill in ${code || "that currency"}.`);
  }
  return CURRENCIES[code];
}

// Digits with at most `decimals` decimals as an integer scaled by 10**decimals, or null.
function scaled(text, decimals) {
  const cleaned = String(text ?? "").trim();
  if (!cleaned || cleaned.length > MAX_NUMBER_TEXT) {
    return null;
  }
  const match = DECIMAL.exec(cleaned);
  if (match === null) {
    return null;
  }
  const whole = match[1].replace(/^0+(?=\d)/, "");
  const fraction = match[2] || "";
  if (fraction.length > decimals || whole.length > 15) {
    return { tooPrecise: fraction.length > decimals, value: null };
  }
  return { tooPrecise: false, value: Number(whole) * 10 ** decimals + Number(fraction.padEnd(decimals, "0") || "0") };
}

/**
 * Minor units from what a person typed: "300.00" USD is 30000, "1500" JPY is 1500.
 * Throws an Error with a sentence for people when the text is not an amount.
 */
export function parseAmount(text, currency) {
  const decimals = decimalsOf(currency);
  const example = decimals ? `1234.${"5".padEnd(decimals, "0")}` : "1234";
  const read = scaled(text, decimals);
  if (read === null) {
    throw new Error(`Write the amount as digits, like ${example}.`);
  }
  if (read.tooPrecise) {
    throw new Error(`${currency} has ${decimals === 0 ? "no" : decimals} decimal${decimals === 1 ? "" : "s"}: write it like ${example}.`);
  }
  if (read.value === null || read.value > MAX_MINOR_UNITS) {
    throw new Error("This amount is too large.");
  }
  return read.value;
}

/** Minor units as text without the code: 123450 USD → "1,234.50"; a minus sign if negative. */
export function formatMinorUnits(amount, currency) {
  const decimals = decimalsOf(currency);
  const sign = amount < 0 ? "-" : "";
  const magnitude = Math.abs(amount);
  const unit = 10 ** decimals;
  const major = Math.floor(magnitude / unit).toLocaleString("en-US");
  const minor = decimals ? "." + String(magnitude % unit).padStart(decimals, "0") : "";
  return sign + major + minor;
}

/** "USD 1,234.50". */
export function formatMoney(amount, currency) {
  return `${currency} ${formatMinorUnits(amount, currency)}`;
}

/** Minor units as the text a field shows for editing: 30000 USD → "300.00" (no separators). */
export function amountInput(amount, currency) {
  return formatMinorUnits(amount, currency).replace(/,/g, "");
}

/** "33.33" (percent, at most two decimals, 0 to 100) as 3333 basis points; throws otherwise. */
export function parsePercent(text) {
  const read = scaled(text, 2);
  if (read === null || read.value === null) {
    throw new Error(read && read.tooPrecise ? "A percentage has at most two decimals." : "Write a percentage like 33.33.");
  }
  if (read.value > WHOLE) {
    throw new Error("A percentage is 0 to 100.");
  }
  return read.value;
}

/** 3333 basis points as "33.33 %", 750 as "7.5 %", 2000 as "20 %". */
export function formatPercent(basisPoints) {
  const whole = Math.floor(basisPoints / 100);
  const fraction = basisPoints % 100;
  const text = fraction ? `${whole}.${String(fraction).padStart(2, "0")}`.replace(/0$/, "") : String(whole);
  return `${text} %`;
}

/** Basis points as the text a field shows for editing: 3333 → "33.33", 5000 → "50". */
export function percentInput(basisPoints) {
  return formatPercent(basisPoints).replace(" %", "");
}

/** "1.5" (hours or units, up to three decimals, above 0) as 1500 thousandths; throws otherwise. */
export function parseQuantity(text) {
  const read = scaled(text, 3);
  if (read === null || read.value === null) {
    throw new Error(read && read.tooPrecise ? "A quantity has at most three decimals." : "Write a quantity like 1.5.");
  }
  if (read.value <= 0 || read.value > MAX_QUANTITY_THOUSANDTHS) {
    throw new Error("A quantity is more than 0 and at most 1,000,000.");
  }
  return read.value;
}

/** 1500 thousandths as "1.5", 2000 as "2". */
export function formatQuantity(thousandths) {
  const whole = Math.floor(thousandths / 1000);
  const fraction = thousandths % 1000;
  return fraction ? `${whole}.${String(fraction).padStart(3, "0")}`.replace(/0+$/, "") : String(whole);
}

const STATUS_NAMES = { open: "Open", paid: "Paid", credited: "Credited" };

/** An invoice's status as people read it. */
export function invoiceStatusName(status) {
  return STATUS_NAMES[status] || String(status || "");
}
