// The text of a settlement agreement as people type it: a title and numbered clauses, each
// an optional heading and a Markdown body (docs/agreements.md). Used to create an agreement
// on the space page, and to edit or propose a change on the agreement page.

import { el } from "./dom.js";

export const MAX_TITLE = 200;
export const MAX_HEADING = 200;
export const MAX_CLAUSE = 10000;
export const MAX_CLAUSES = 100;

/**
 * A clause editor inside `form`: the form holds an <input> for the title (`titleInput`) and
 * an empty list (`list`) the clauses are written into, and an "add a clause" button (`add`).
 * `prefix` makes the ids and test ids of its fields unique on the page.
 */
export class ClauseEditor {
  constructor({ titleInput, list, add, prefix }) {
    this.titleInput = titleInput;
    this.list = list;
    this.prefix = prefix;
    add.addEventListener("click", () => {
      if (this.list.children.length < MAX_CLAUSES) {
        this.append({ heading: "", body: "" }).querySelector("textarea").focus();
      }
    });
  }

  /** Fills the editor with `text` ({title, clauses: [{heading, body}]}). */
  setText(text) {
    this.titleInput.value = text.title || "";
    this.list.replaceChildren();
    const clauses = text.clauses && text.clauses.length ? text.clauses : [{ heading: "", body: "" }];
    for (const clause of clauses) {
      this.append(clause);
    }
    this.base = this.typed();
  }

  /** What is in the fields now, unchecked, as one string (to compare). */
  typed() {
    const clauses = [...this.list.children].map((item) => [
      item.querySelector(".clause-heading-input").value,
      item.querySelector(".clause-body-input").value,
    ]);
    return JSON.stringify([this.titleInput.value, clauses]);
  }

  /** Whether anything was typed since the last `setText`. */
  isDirty() {
    return this.base !== undefined && this.typed() !== this.base;
  }

  append(clause) {
    const item = el("li", { class: "clause-edit", dataset: { testid: `${this.prefix}-clause` } });
    this.list.append(item);
    this.fill(item, clause);
    this.renumber();
    return item;
  }

  fill(item, clause) {
    const heading = el("input", {
      type: "text",
      maxlength: String(MAX_HEADING),
      autocomplete: "off",
      class: "clause-heading-input",
      dataset: { testid: `${this.prefix}-clause-heading` },
    });
    heading.value = clause.heading || "";
    const body = el("textarea", {
      rows: "4",
      maxlength: String(MAX_CLAUSE),
      class: "clause-body-input",
      dataset: { testid: `${this.prefix}-clause-body` },
    });
    body.value = clause.body || "";
    const remove = el("button", { type: "button", class: "quiet", dataset: { testid: `${this.prefix}-remove-clause` } }, "Remove this clause");
    remove.addEventListener("click", () => {
      if (this.list.children.length > 1) {
        item.remove();
        this.renumber();
      }
    });
    item.replaceChildren(
      el("div", { class: "field" }, el("label", { class: "heading-label" }), heading),
      el("div", { class: "field" }, el("label", { class: "body-label" }), body),
      el("div", { class: "actions" }, remove),
    );
  }

  renumber() {
    [...this.list.children].forEach((item, index) => {
      const number = index + 1;
      const heading = item.querySelector(".clause-heading-input");
      const body = item.querySelector(".clause-body-input");
      heading.id = `${this.prefix}-heading-${number}`;
      body.id = `${this.prefix}-body-${number}`;
      const headingLabel = item.querySelector(".heading-label");
      headingLabel.htmlFor = heading.id;
      headingLabel.textContent = `Clause ${number} heading (optional)`;
      const bodyLabel = item.querySelector(".body-label");
      bodyLabel.htmlFor = body.id;
      bodyLabel.textContent = `Clause ${number} text`;
    });
  }

  /** The typed text as the API takes it; throws an Error saying what is missing. */
  text() {
    const title = this.titleInput.value.trim();
    if (!title) {
      throw new Error("Give the agreement a title.");
    }
    const clauses = [...this.list.children].map((item, index) => {
      const body = item.querySelector(".clause-body-input").value;
      if (!body.trim()) {
        throw new Error(`Clause ${index + 1} has no text.`);
      }
      return { heading: item.querySelector(".clause-heading-input").value, body };
    });
    return { title, clauses };
  }
}
