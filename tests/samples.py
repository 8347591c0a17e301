"""Small genuine files for upload tests: a one-page PDF and a JPEG picture."""

from __future__ import annotations

import av


def pdf_bytes(text: str = "Settlement terms") -> bytes:
    """A valid one-page PDF showing ``text`` (ASCII)."""
    content = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def jpeg_bytes(width: int = 32, height: int = 24, shade: int = 180) -> bytes:
    """A baseline JPEG of one flat colour."""
    frame = av.VideoFrame(width, height, "yuvj420p")
    for index, plane in enumerate(frame.planes):
        plane.update(bytes([shade if index == 0 else 100]) * plane.buffer_size)
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])
