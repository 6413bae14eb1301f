"""User files as providers read them: data URLs parsed, the kind of a media type, text
files as text, and the note that replaces a file a model cannot read."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from protocol.messages import FileUIPart

FileKind = Literal["image", "pdf", "text", "other"]


@dataclass(frozen=True, slots=True)
class DataURL:
    media_type: str
    data: str
    """Base64."""

    def text(self) -> str:
        return base64.b64decode(self.data).decode("utf-8", errors="replace")


_DATA_URL = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.DOTALL)


def parse_data_url(url: str) -> DataURL | None:
    """`data:[<type>][;base64],<data>` → media type and base64 data; None otherwise."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    media_type = match["type"].strip().lower() or "text/plain"
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    payload = match["data"]
    if "base64" in params:
        try:
            raw = base64.b64decode(urllib.parse.unquote(payload), validate=False)
        except (binascii.Error, ValueError):
            return None
    else:
        raw = urllib.parse.unquote_to_bytes(payload)
    return DataURL(media_type=media_type, data=base64.b64encode(raw).decode("ascii"))


def file_kind(media_type: str) -> FileKind:
    media_type = media_type.lower()
    if media_type.startswith("image/"):
        return "image"
    if media_type == "application/pdf":
        return "pdf"
    if media_type.startswith("text/") or media_type in {"application/json", "application/xml"}:
        return "text"
    return "other"


def file_text(part: FileUIPart) -> str | None:
    """The content of a text file sent as a data URL, as a labelled block of text."""
    data = parse_data_url(part.url)
    if data is None:
        return None
    name = part.filename or "attachment"
    return f"[file {name} ({part.media_type})]\n{data.text()}"


def unsupported_file_note(part: FileUIPart) -> str:
    """A file the provider cannot read becomes a note instead of an error, so one odd
    attachment does not make the whole chat unusable."""
    name = part.filename or "attachment"
    return f"[file {name} ({part.media_type}) omitted: this model cannot read that file type]"
