"""What a figure or GIF was drawn from: the paths and sha256 of its source JSON files, written
into the picture itself (PNG text chunks, a GIF comment) and read back by the test that fails
when a committed picture's source has changed since it was drawn."""
from __future__ import annotations

import json
import os
import struct

from rnem.environment import source_sha256
from rnem.files import write_atomic

KEY = "rnem-source"          # the PNG text chunk; the GIF comment holds the same JSON


def record(*paths: str) -> str:
    """JSON list of {"path", "sha256"} of the source files, paths as given (relative to where the
    script ran: the repository root for regenerate.sh)."""
    return json.dumps([{"path": os.path.normpath(p), "sha256": source_sha256(p)} for p in paths])


def save_png(fig, path: str, sources, dpi: int, **kwargs) -> None:
    """fig written to path atomically, with the record of `sources` in its text chunk KEY."""
    meta = {KEY: sources if isinstance(sources, str) else record(*sources)}
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", metadata=meta, **kwargs), ".png")


def png_text(path: str) -> dict:
    """The tEXt chunks of a PNG file: {keyword: text} (Latin-1)."""
    chunks = {}
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"{path} is not a PNG file")
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            data = f.read(length)
            f.read(4)                                         # the chunk's CRC
            if kind == b"tEXt":
                key, _, text = data.partition(b"\0")
                chunks[key.decode("latin-1")] = text.decode("latin-1")
            if kind == b"IEND":
                break
    return chunks


def gif_comment(path: str) -> str:
    """The first comment extension of a GIF file ('' if none)."""
    with open(path, "rb") as f:
        data = f.read()
    start = data.find(b"\x21\xfe")                            # extension introducer, comment label
    while start >= 0:
        blocks, i = [], start + 2
        while i < len(data) and data[i]:
            blocks.append(data[i + 1:i + 1 + data[i]])
            i += 1 + data[i]
        text = b"".join(blocks)
        try:
            json.loads(text)
            return text.decode("latin-1")
        except ValueError:                                     # the bytes 21 fe inside image data
            start = data.find(b"\x21\xfe", start + 1)
    return ""


def sources_of(path: str) -> list:
    """The record written into a committed PNG or GIF ([] if none)."""
    text = png_text(path).get(KEY, "") if path.endswith(".png") else gif_comment(path)
    return json.loads(text) if text else []
