// The site header on every signed-in page: who is signed in, where they can go, sign out.

import { logout } from "./api.js";
import { el, roleName } from "./dom.js";

/** Escape closes the phone menu: one listener for the page, whichever header is drawn. */
let escapeCloses = false;

function setMenuOpen(header, open) {
  const toggle = header.querySelector(".menu-toggle");
  if (toggle) {
    toggle.setAttribute("aria-expanded", String(open));
  }
  header.toggleAttribute("data-menu-open", open);
}

/**
 * Fills <header id="site-header"> for `session`; links only once the session is active.
 * On a case's pages `caseRole` is the person's role in that case (party, counsel…), shown
 * in place of their account's kind; a plain member account shows no role elsewhere.
 */
export function renderHeader(session, { caseRole = null } = {}) {
  const header = document.getElementById("site-header");
  if (header === null) {
    return;
  }
  const user = session.user;
  const brand = el("a", { class: "brand", href: "/cases" }, "Caucus");
  const nav = el("nav", { "aria-label": "Main" });
  if (session.stage === "active") {
    const links = [
      ["/cases", "Cases"],
      ["/account/security", "Security"],
    ];
    if (user && user.role === "neutral") {
      links.push(["/neutral/requests", "Requests"]);
      links.push(["/neutral/availability", "Availability"]);
      links.push(["/billing", "Billing"]);
    }
    if (user && user.role === "admin") {
      links.push(["/admin/users", "Users"]);
      links.push(["/admin/mail", "Mail"]);
    }
    for (const [href, text] of links) {
      const here = window.location.pathname;
      const current = here === href || (href === "/neutral/requests" && here.startsWith("/neutral/requests/"));
      nav.append(el("a", { href, "aria-current": current ? "page" : null }, text));
    }
  }
  const shownRole = caseRole || (user && user.role !== "member" ? user.role : null);
  const who = el(
    "span",
    { class: "who" },
    el("span", { class: "who-name", dataset: { testid: "current-user" } }, user ? user.display_name || user.username : ""),
    shownRole ? el("span", { class: "who-role", dataset: { testid: "current-role" } }, roleName(shownRole)) : null,
  );
  const signOut = el("button", { type: "button", class: "quiet", dataset: { testid: "logout" } }, "Sign out");
  signOut.addEventListener("click", () => {
    signOut.disabled = true;
    logout();
  });
  // On a phone the links and the account fold behind one "Menu" button (caucus.css), so
  // that the header takes one row, not three, above a call or a conversation.
  const menu = el("div", { id: "site-menu", class: "menu" }, nav, el("div", { class: "account" }, who, signOut));
  // (a page may render its header again, e.g. once it knows the case role: an open menu
  // stays open)
  const toggle = el(
    "button",
    {
      type: "button",
      class: "quiet menu-toggle",
      "aria-expanded": String(header.hasAttribute("data-menu-open")),
      "aria-controls": "site-menu",
      dataset: { testid: "menu-toggle" },
    },
    "Menu",
  );
  toggle.addEventListener("click", () => setMenuOpen(header, toggle.getAttribute("aria-expanded") !== "true"));
  header.replaceChildren(el("div", { class: "bar" }, brand, toggle, menu));
  if (!escapeCloses) {
    escapeCloses = true;
    document.addEventListener("keydown", (event) => {
      const current = header.querySelector(".menu-toggle");
      if (event.key === "Escape" && current && current.getAttribute("aria-expanded") === "true") {
        setMenuOpen(header, false);
        current.focus();
      }
    });
  }
}
