"""A CSV/TSV file's declared encoding checked against its bytes, before and after decoding.

A wrong ``encoding`` in the config does not always fail to decode: a UTF-8 file read as
latin-1 or cp1252 decodes without error into mojibake (``ZÃ¼rich`` for ``Zürich``), which
silently splits one site or label into two spellings, and a UTF-16 file read as latin-1
decodes into text full of NUL characters. Both are stopped here, with the encoding to set:

* :func:`check_declared_encoding` (on the bytes): a UTF-16 or UTF-32 byte-order mark, or the
  NUL bytes every other byte that UTF-16 gives ASCII text, in a file not declared UTF-16;
* :func:`check_mojibake` (on the decoded text): a file declared in a single-byte encoding whose
  bytes are valid UTF-8 with non-ASCII characters (the file is UTF-8), or text holding the
  tell-tale pairs of UTF-8 decoded as latin-1/cp1252 (``Ã¼``, ``Ã©``, ``â€™``: the export
  converted it twice).
"""

from __future__ import annotations

import codecs
import re

from alliance.intake.findings import InputError

__all__ = ["check_declared_encoding", "check_mojibake"]

#: How much of the file's start the byte checks look at.
_SAMPLE = 4096
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# UTF-8 read as latin-1 / cp1252: a lead byte (Ã Â Å Ä â) then a continuation byte as a character
_MOJIBAKE = re.compile("[ÃÂÅÄ][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u02c6\u02dc]|â€")


def _utf16_kind(raw: bytes) -> str | None:
    """``"utf-16"`` / ``"utf-32"`` when the bytes are of that encoding (byte-order mark or NUL pattern), else None."""
    for bom, kind in _BOMS:
        if raw.startswith(bom):
            return kind
    sample = raw[:_SAMPLE]
    if len(sample) >= 4 and sample.count(0) >= len(sample) // 4:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if max(even, odd) >= len(sample) // 4:  # ASCII text in UTF-16: every other byte is NUL
            return "utf-16"
    return None


def check_declared_encoding(raw: bytes, file: str, declared: str) -> None:
    """Raise when the bytes are UTF-16/UTF-32 but another encoding is declared (``declared``: codec name)."""
    kind = _utf16_kind(raw)
    if kind is None or codecs.lookup(declared).name.startswith(("utf-16", "utf-32")):
        return
    raise InputError(
        f"is encoded as {kind.upper()} (it starts with a {kind.upper()} byte-order mark or has a NUL byte "
        f"between its characters), but the config declares encoding: {declared}; set encoding: {kind} for "
        "this file in the config, or re-save the file as UTF-8",
        file=file,
    )


def check_mojibake(text: str, raw: bytes, file: str, declared: str) -> None:
    """Raise when the decoded text is mojibake: a UTF-8 file read in another encoding, or text converted twice."""
    name = codecs.lookup(declared).name
    if name != "utf-8" and not raw.isascii():
        try:
            as_utf8 = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            as_utf8 = None
        if as_utf8 is not None:
            _raise(
                text,
                file,
                f"the file is UTF-8 but the config declares encoding: {declared}; set encoding: utf-8 for "
                "this file in the config",
            )
    found = _MOJIBAKE.search(text)
    if found is not None:
        _raise(
            text,
            file,
            "UTF-8 text was decoded as latin-1 or cp1252 before the file was saved (the export converted "
            "it twice); re-export the file as UTF-8, or repair the text",
            at=found.start(),
        )


def _raise(text: str, file: str, reason: str, at: int | None = None) -> None:
    """Raise the mojibake error at the first garbled word (``at``: its offset; else the first found)."""
    if at is None:
        found = _MOJIBAKE.search(text)
        at = found.start() if found else next((i for i, ch in enumerate(text) if ord(ch) > 127), 0)
    line = text.count("\n", 0, at) + 1
    start = max(text.rfind(",", 0, at), text.rfind("\n", 0, at), text.rfind("\t", 0, at)) + 1
    ends = [i for i in (text.find(",", at), text.find("\n", at), text.find("\t", at)) if i >= 0]
    word = text[start : min(ends) if ends else len(text)].strip().strip('"')
    raise InputError(f"looks garbled: {reason}", file=file, row=line, value=word)
