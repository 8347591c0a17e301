"""Fuzz target: ``rooms.spaces.filetypes``, which decides what an uploaded file is.

An input is two control bytes and the head of an upload.  Byte 0 says whether the head
is the whole file (``complete``) and where a streamed text upload is cut in two; byte 1
picks the file name the client claims.  The head goes to ``sniff`` and, as the upload
path does for text, through ``TextCheck`` in two pieces.

Rejection is a return value (``None``, ``False``).  A crash is any exception, a type
outside the allowed set, text accepted that is not UTF-8 without control characters
(or refused when it is), or a text check whose answer depends on where the stream was
cut.
"""

from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports(include=["rooms.spaces.filetypes"]):
    from rooms.spaces import filetypes
    from rooms.spaces.filetypes import TextCheck, sniff

NAMES = ("", "brief.pdf", "a.doc", "b.XLS", "c.ppt", "d.docx", "e.xlsx", "f.pptx", "g.", "h")
ALLOWED = {
    "application/pdf": "document",
    filetypes.DOCX: "document",
    filetypes.XLSX: "document",
    filetypes.PPTX: "document",
    filetypes.OLE: "document",
    "application/msword": "document",
    "application/vnd.ms-excel": "document",
    "application/vnd.ms-powerpoint": "document",
    "image/jpeg": "picture",
    "image/png": "picture",
    "image/gif": "picture",
    "image/webp": "picture",
    "video/mp4": "video",
    "video/webm": "video",
    filetypes.TEXT: "text",
}
CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f]")


def is_text(data: bytes, complete: bool) -> bool:
    """Plain UTF-8 without control characters (but a character cut at the end of a
    head that is not the whole file), judged without the incremental decoder."""
    for cut in range(4 if not complete else 1):
        try:
            text = data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError as exc:
            if complete or exc.start < len(data) - 3:
                return False
            continue
        return CONTROL.search(text) is None
    return False


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    control, name, head = data[0], NAMES[data[1] % len(NAMES)], data[2:]
    complete = bool(control & 0x80)
    kind = sniff(head, name, complete=complete)
    if kind is not None:
        assert ALLOWED.get(kind.content_type) == kind.kind, kind
        assert kind.previewable in (True, False)
        if kind.kind == "text":
            assert head and is_text(head, complete), "accepted as text"

    cut = (control & 0x7F) * len(head) // 127
    whole = TextCheck()
    whole_ok = whole.feed(head) and whole.finish()
    split = TextCheck()
    split_ok = split.feed(head[:cut]) and split.feed(head[cut:]) and split.finish()
    assert whole_ok == split_ok, f"text check depends on the cut at {cut}"
    assert whole_ok == is_text(head, True), "text check disagrees with a plain decode"


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
