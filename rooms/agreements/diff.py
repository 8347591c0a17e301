"""Comparing two versions of an agreement: a line diff of their canonical texts."""

from __future__ import annotations

import difflib
from typing import Any

from rooms.agreements.text import AgreementText


def compare(old: AgreementText, new: AgreementText, old_name: str, new_name: str) -> dict[str, Any]:
    """Line by line: ``lines`` (each ``{"op": "equal"|"delete"|"insert", "text"}``, in
    reading order, deletions before the insertions that replace them), a clause summary
    (``changed``, ``added``, ``removed`` clause numbers of the newer version, removed ones
    of the older) and the same as a unified diff for people who read those."""
    a, b = old.canonical().splitlines(), new.canonical().splitlines()
    lines: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            lines.extend({"op": "equal", "text": t} for t in a[i1:i2])
            continue
        lines.extend({"op": "delete", "text": t} for t in a[i1:i2])
        lines.extend({"op": "insert", "text": t} for t in b[j1:j2])
    shared = min(len(old.clauses), len(new.clauses))
    changed = [n + 1 for n in range(shared) if old.clauses[n] != new.clauses[n]]
    unified = "\n".join(difflib.unified_diff(a, b, fromfile=old_name, tofile=new_name, lineterm=""))
    return {
        "title_changed": old.title != new.title,
        "changed_clauses": changed,
        "added_clauses": list(range(shared + 1, len(new.clauses) + 1)),
        "removed_clauses": list(range(shared + 1, len(old.clauses) + 1)),
        "lines": lines,
        "unified": unified + "\n" if unified else "",
    }
