// Instants (Unix seconds, as the API writes them) shown in a named IANA time zone.

/** The zone this browser runs in, e.g. "Europe/London"; "UTC" when the browser cannot say. */
export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** Every zone the browser knows, sorted, with `extra` zones (the ones in use) always included. */
export function zoneNames(...extra) {
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch {
    names = [];
  }
  return [...new Set([...names, "UTC", ...extra.filter(Boolean)])].sort();
}

/** "America/Argentina/Buenos_Aires" → "America/Argentina/Buenos Aires". */
export function zoneLabel(zone) {
  return String(zone || "").replace(/_/g, " ");
}

/** Fills a <select> with every zone, choosing `chosen`. */
export function fillZoneSelect(select, chosen, ...extra) {
  select.replaceChildren(
    ...zoneNames(chosen, ...extra).map((zone) => {
      const option = document.createElement("option");
      option.value = zone;
      option.textContent = zoneLabel(zone);
      return option;
    }),
  );
  select.value = chosen;
}

function formatter(zone, options) {
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone: zone, ...options });
  } catch {
    return new Intl.DateTimeFormat(undefined, { timeZone: "UTC", ...options });
  }
}

const DAY = { weekday: "long", day: "numeric", month: "long", year: "numeric" };
const SHORT_DAY = { weekday: "short", day: "numeric", month: "short" };
const TIME = { hour: "2-digit", minute: "2-digit" };

/** The day of `epoch` in `zone`, e.g. "Tuesday 5 January 2027". */
export function formatDay(epoch, zone) {
  return formatter(zone, DAY).format(new Date(epoch * 1000));
}

/** The clock time of `epoch` in `zone`, e.g. "10:00". */
export function formatTime(epoch, zone) {
  return formatter(zone, TIME).format(new Date(epoch * 1000));
}

/** Day and time of `epoch` in `zone`, e.g. "Tue 5 Jan, 10:00"; `long` writes the day in full. */
export function formatInstant(epoch, zone, { long = false } = {}) {
  return formatter(zone, { ...(long ? DAY : SHORT_DAY), ...TIME }).format(new Date(epoch * 1000));
}

/** "Tuesday 5 January 2027, 10:00–11:00 (Europe/London)": a session of `minutes` in `zone`. */
export function formatSpan(epoch, minutes, zone) {
  const end = epoch + minutes * 60;
  return `${formatInstant(epoch, zone, { long: true })}–${formatTime(end, zone)} (${zoneLabel(zone)})`;
}

/** A sortable key of the calendar day of `epoch` in `zone`: "2027-01-05". */
export function dayKey(epoch, zone) {
  const parts = formatter(zone, { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(
    new Date(epoch * 1000),
  );
  const part = (type) => (parts.find((item) => item.type === type) || {}).value || "";
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** Now, in Unix seconds. */
export function nowEpoch() {
  return Math.floor(Date.now() / 1000);
}

/** The Unix time of a `datetime-local` value ("2027-01-05T10:00"), read in this browser's zone. */
export function epochFromLocalInput(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value || "")) {
    return null;
  }
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : Math.floor(date.getTime() / 1000);
}

/** The `datetime-local` value of `epoch` in this browser's zone. */
export function localInputFromEpoch(epoch) {
  const date = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
