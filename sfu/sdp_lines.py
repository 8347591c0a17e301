"""An SDP as the lines the SFU's rewriters read and write: the session part, one list of
lines per m-section, and the line ending to join them with.

aiortc reads none of the lines the SFU adds to or reads from its offers and answers
(simulcast's ``a=rid``/``a=simulcast``, the transport-wide sequence number's
``a=extmap``): those modules work on these lines.  Lines are split as aiortc splits an
SDP (``str.splitlines``), so that a hostile SDP with mixed line endings is read here as
aiortc reads it; an SDP written back uses the line ending it arrived with (``\\r\\n`` if
it has one anywhere, else ``\\n``) and ends with one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: ``a=extmap:<id>[/<direction>] <uri> ...`` (RFC 8285): the id and the URI.  An id is
#: 1-255; more than five digits is no extmap line here (a hostile id of thousands of
#: digits would otherwise reach ``int()``, which refuses beyond 4,300).
EXTMAP = re.compile(r"^a=extmap:(\d{1,5})(?:/\S+)?\s+(\S+)")


@dataclass
class SdpLines:
    """The lines of an SDP: before the first m-line, and from each m-line to the next."""

    session: list[str]
    sections: list[list[str]]
    newline: str

    def text(self) -> str:
        """The SDP again, every line ended by :attr:`newline`."""
        lines = [*self.session, *(line for section in self.sections for line in section)]
        return "".join(line + self.newline for line in lines)


def split_sdp(sdp: str) -> SdpLines:
    """``sdp`` as :class:`SdpLines` (empty lines dropped: SDP has none)."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return SdpLines(session, sections, "\r\n" if "\r\n" in sdp else "\n")


def extmaps(lines: list[str]) -> list[tuple[int, str]]:
    """The ``(id, uri)`` of every ``a=extmap`` line among ``lines``, in their order."""
    found = []
    for line in lines:
        match = EXTMAP.match(line)
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return found


def mid_of(section: list[str]) -> str | None:
    """The ``a=mid`` of an m-section, if it has one."""
    return next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)


def rejected(section: list[str]) -> bool:
    """Whether the m-section is rejected (port 0) or its m-line is malformed."""
    parts = section[0].split()
    return len(parts) < 2 or parts[1] == "0"
