"""The Unicode font the PDFs embed when the machine has it (Debian's fonts-dejavu-core):
a test that needs it is skipped on a developer's machine without it, and fails in CI,
where `make browser` installs it."""

from __future__ import annotations

import os

import pytest

from rooms.printing.pdf_text import UNICODE_FONT


def need_unicode_font() -> None:
    if UNICODE_FONT.is_file():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{UNICODE_FONT} is missing: `make browser` installs fonts-dejavu-core")
    pytest.skip("fonts-dejavu-core is not installed")
