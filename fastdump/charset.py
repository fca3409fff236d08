"""Specific Character Set -> Python codecs, and text decoded with them, as pydicom 3 does.

The fast path decodes text without importing pydicom (0.3 s, numpy included, in
every process that meets a character set beyond the common ones). This module
carries ``pydicom.charset``'s tables (pydicom is MIT-licensed) and its decoding of
text with ISO 2022 escape sequences. Where pydicom would warn, and then guess or
replace bytes, :class:`NotAsPydicom` says so, and the file is left to the pydicom
path. tests/test_charset.py checks the tables against pydicom's, and the decoding
against pydicom's ``decode_bytes`` on every corpus file's text and on bytes made to
break it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Collection, Sequence

from .dicom import DEFAULT_ENCODING

# DICOM's defined terms -> Python codecs: pydicom's python_encoding
PYTHON_ENCODING = {
    "": DEFAULT_ENCODING,
    "ISO_IR 6": DEFAULT_ENCODING,
    "ISO_IR 13": "shift_jis",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 126": "iso_ir_126",
    "ISO_IR 127": "iso_ir_127",
    "ISO_IR 138": "iso_ir_138",
    "ISO_IR 144": "iso_ir_144",
    "ISO_IR 148": "iso_ir_148",
    "ISO_IR 166": "iso_ir_166",
    "ISO 2022 IR 6": "iso8859",
    "ISO 2022 IR 13": "shift_jis",
    "ISO 2022 IR 87": "iso2022_jp",
    "ISO 2022 IR 100": "latin_1",
    "ISO 2022 IR 101": "iso8859_2",
    "ISO 2022 IR 109": "iso8859_3",
    "ISO 2022 IR 110": "iso8859_4",
    "ISO 2022 IR 126": "iso_ir_126",
    "ISO 2022 IR 127": "iso_ir_127",
    "ISO 2022 IR 138": "iso_ir_138",
    "ISO 2022 IR 144": "iso_ir_144",
    "ISO 2022 IR 148": "iso_ir_148",
    "ISO 2022 IR 149": "euc_kr",
    "ISO 2022 IR 159": "iso2022_jp_2",
    "ISO 2022 IR 166": "iso_ir_166",
    "ISO 2022 IR 58": "iso_ir_58",
    "ISO_IR 192": "UTF8",
    "GB18030": "GB18030",
    "ISO 2022 GBK": "GBK",
    "ISO 2022 58": "GB2312",
    "GBK": "GBK",
}

# Character sets that allow no code extensions (PS3.3 Table C.12-5)
STAND_ALONE_ENCODINGS = ("ISO_IR 192", "GBK", "GB18030")

ESC = b"\x1b"

# Escape sequences (PS3.3 Tables C.12-3 and C.12-4) -> Python codecs
CODES_TO_ENCODINGS = {
    ESC + b"(B": DEFAULT_ENCODING,
    ESC + b"-A": "latin_1",
    ESC + b")I": "shift_jis",
    ESC + b"(J": "shift_jis",
    ESC + b"$B": "iso2022_jp",
    ESC + b"-B": "iso8859_2",
    ESC + b"-C": "iso8859_3",
    ESC + b"-D": "iso8859_4",
    ESC + b"-F": "iso_ir_126",
    ESC + b"-G": "iso_ir_127",
    ESC + b"-H": "iso_ir_138",
    ESC + b"-L": "iso_ir_144",
    ESC + b"-M": "iso_ir_148",
    ESC + b"-T": "iso_ir_166",
    ESC + b"$)C": "euc_kr",
    ESC + b"$(D": "iso2022_jp_2",
    ESC + b"$)A": "iso_ir_58",
}

# Codecs that read their own escape sequences: Python is handed the fragment whole
HANDLED_ENCODINGS = ("iso2022_jp", "iso2022_jp_2", "iso_ir_58")

# The text before the first escape, then each escape with the text up to the next one
_FRAGMENTS = re.compile(b"(^[^\x1b]+|[\x1b][^\x1b]*)")


class NotAsPydicom(ValueError):
    """Names or text that pydicom reads only with a warning (and a guess)."""


def python_encodings(names: Sequence[str]) -> list[str]:
    """The codecs of Specific Character Set's values, as pydicom's ``convert_encodings``.

    Raises NotAsPydicom for a name pydicom does not know (it would guess a codec)
    and for a stand-alone character set among several (it would drop some).
    """
    for name in names:
        if name not in PYTHON_ENCODING:
            raise NotAsPydicom(f"unknown character set name {name!r}")
    if len(names) > 1 and any(name in STAND_ALONE_ENCODINGS for name in names):
        raise NotAsPydicom("a character set that allows no code extensions, among several")
    return [PYTHON_ENCODING[name] for name in names or [""]]


def read_as(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The codecs pydicom reads text with under ``names``, and the names among them
    that are not DICOM's (pydicom warns of those; the record names them, see
    :func:`unknown_name`).

    A misspelt name pydicom corrects (``ISO-IR 100``) reads as its correction, any
    other unknown name as the default repertoire. Raises NotAsPydicom where pydicom
    would use a Python codec of that name, or drop a stand-alone set among several.
    """
    unknown = [name for name in names if name not in PYTHON_ENCODING]
    if not unknown:
        return python_encodings(names), unknown
    return python_encodings([_read_as(name) for name in names]), unknown


def _read_as(name: str) -> str:
    if name in PYTHON_ENCODING:
        return name
    corrected = _corrected(name)
    if corrected is not None:
        return corrected if corrected in PYTHON_ENCODING else ""
    try:
        codec = _is_codec(name)
    except ValueError as exc:  # (a NUL in it) pydicom's lookup raises this when it decodes
        raise NotAsPydicom(f"a character set name Python refuses ({exc})") from None
    if codec:
        raise NotAsPydicom(f"the Python codec {name!r} as a character set name")
    return ""


def unknown_name(name: str) -> str:
    """The warning of a Specific Character Set name that is not DICOM's: how pydicom
    read the text (as pydicom's ``_python_encoding_for_corrected_encoding`` does)."""
    start = f"UnknownCharset: {name!r} is not a DICOM character set; pydicom"
    corrected = _corrected(name)
    if corrected in PYTHON_ENCODING:
        return f"{start} read it as {corrected!r}, the common misspelling corrected"
    if corrected is None and _is_codec(name):
        return f"{start} decoded the text with Python's codec {name!r}, which may be wrong"
    return f"{start} decoded the text as ISO-IR 6 / latin-1, which may be wrong"


def _corrected(name: str) -> str | None:
    """pydicom's correction of a misspelt name (``ISO-IR 100``, ``ISO 2022-IR 87``),
    or None where it tries none."""
    if _MISSPELT.match(name):
        return "ISO_IR" + name[6:]
    if _MISSPELT_2022.match(name):
        return "ISO 2022 IR " + name[12:]
    return None


def _is_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


# the misspellings pydicom corrects, with its own patterns
_MISSPELT = re.compile("^ISO[^_]IR")
_MISSPELT_2022 = re.compile("^(?=ISO.2022.IR.)(?!ISO 2022 IR )")


def decode_escaped(value: bytes, encodings: str | Sequence[str],
                   delimiters: Collection[int]) -> str:
    """Text holding ISO 2022 escape sequences, as pydicom's ``decode_bytes`` decodes it.

    Each fragment that starts with an escape is decoded with the codec it names,
    up to the first of ``delimiters``; the rest with the first codec.
    """
    encodings = _listed(encodings)
    try:
        return "".join(_decode_fragment(fragment, encodings, delimiters)
                       for fragment in _FRAGMENTS.findall(value))
    except (UnicodeError, LookupError) as exc:
        # pydicom would warn and replace the bytes it cannot decode
        raise NotAsPydicom(f"text not valid in {', '.join(encodings)}: {exc}") from exc


def _decode_fragment(fragment: bytes, encodings: Sequence[str],
                     delimiters: Collection[int]) -> str:
    if not fragment.startswith(ESC):
        return fragment.decode(encodings[0])
    length = 4 if fragment.startswith((b"\x1b$(", b"\x1b$)")) else 3
    encoding = CODES_TO_ENCODINGS.get(fragment[:length], "")
    if encoding not in encodings and encoding != DEFAULT_ENCODING:
        raise NotAsPydicom("unknown escape sequence in text")  # pydicom warns, then guesses
    if encoding in HANDLED_ENCODINGS:
        return fragment.decode(encoding)
    text = fragment[length:]
    # A delimiter (a line end, a tab...) returns to the first character set
    end = next((i for i, byte in enumerate(text) if byte in delimiters), len(text))
    return text[:end].decode(encoding) + text[end:].decode(encodings[0])


def check_person_name(name: str, encodings: str | Sequence[str]) -> None:
    """Raise NotAsPydicom where pydicom, reading a decoded person name, warns or fails.

    pydicom builds a ``PersonName`` of each name (validating its components) and
    encodes it again with the dataset's character sets (``PersonName.encode``):
    a name that does not survive that is left to the pydicom path.
    """
    groups = name.split("=")
    if name and (len(groups) > 3 or any(len(group) > 64 for group in groups)):
        raise NotAsPydicom("person name pydicom warns about")
    while groups and not groups[-1]:
        groups.pop()  # pydicom drops empty groups at the end before encoding
    encodings = _listed(encodings)
    for group in groups:
        for part in group.split("^"):
            _check_encodable(part, encodings)


def _listed(encodings: str | Sequence[str]) -> Sequence[str]:
    """A dataset's codecs: one, as a dataset without Specific Character Set has, or several."""
    return [encodings] if isinstance(encodings, str) else encodings


def _check_encodable(value: str, encodings: Sequence[str]) -> None:
    """As pydicom's ``encode_string``: one codec for the whole value, else several."""
    try:
        for encoding in encodings:
            try:
                _encode(value, encoding)
            except UnicodeError:
                continue
            return
        if len(encodings) > 1 and _encodable_in_parts(value, encodings):
            return
    except (ValueError, LookupError, IndexError) as exc:
        raise NotAsPydicom(f"person name: {exc}") from exc
    raise NotAsPydicom(f"person name not encodable in {', '.join(encodings)}")


def _encodable_in_parts(value: str, encodings: Sequence[str]) -> bool:
    """As pydicom's ``_encode_string_parts``: each part in the codec that takes most of it.

    (pydicom then encodes each part again; a part that encodes up to where the
    whole failed encodes alone, in every codec here, so that cannot fail.)
    """
    rest = value
    while rest:
        longest = 0
        for encoding in encodings:
            try:
                _encode(rest, encoding)
                longest = len(rest)
                break
            except (UnicodeDecodeError, UnicodeEncodeError) as err:
                longest = max(longest, err.start)
        if longest == 0:
            return False
        rest = rest[longest:]
    return True


def _encode(value: str, encoding: str) -> bytes:
    """``value`` in ``encoding``, with pydicom's stricter encoders for the Japanese sets."""
    if encoding == "shift_jis":
        return _encode_jis_x_0201(value)
    if encoding in ("iso2022_jp", "iso2022_jp_2"):
        return _encode_iso_2022_jp(value, encoding)
    return value.encode(encoding)


def _encode_jis_x_0201(value: str) -> bytes:
    """Single-byte shift_jis, all of ISO IR 13 or all of ISO IR 14 (pydicom's rule)."""
    if not value:
        return b""
    first = value[0].encode("shift_jis")
    if len(first) != 1:
        raise UnicodeEncodeError("shift_jis", value, 0, len(value), "illegal multibyte sequence")
    high = first[0] & 0x80
    for i, char in enumerate(value[1:], 1):
        try:
            byte = char.encode("shift_jis")
        except UnicodeEncodeError as exc:
            raise UnicodeEncodeError("shift_jis", value, i, len(value), exc.reason) from exc
        if len(byte) != 1 or (byte[0] & 0x80) != high:
            raise UnicodeEncodeError("shift_jis", value, i, len(value), "out of the set")
    return value.encode("shift_jis")


def _encode_iso_2022_jp(value: str, encoding: str) -> bytes:
    """Every character in the set the first one escapes to (pydicom's rule)."""
    encoder = codecs.getincrementalencoder(encoding)()
    encoded = encoder.encode(value[0])  # an empty value: IndexError, as in pydicom
    if not encoded.startswith(_ESCAPE_OF[encoding]):
        raise UnicodeEncodeError(encoding, value, 0, len(value), "out of the set")
    for i, char in enumerate(value[1:], 1):
        try:
            part = encoder.encode(char)
        except UnicodeEncodeError as exc:
            raise UnicodeEncodeError(encoding, value, i, len(value), exc.reason) from exc
        if part[:1] == ESC:
            raise UnicodeEncodeError(encoding, value, i, len(value), "out of the set")
        encoded += part
    return encoded


_ESCAPE_OF = {"iso2022_jp": ESC + b"$B", "iso2022_jp_2": ESC + b"$(D"}
