"""Raw elements -> the DICOM JSON Model, without building pydicom objects.

Each VR is converted straight from its bytes (``struct`` for binary numbers,
``bytes.split`` for strings) with the exact rules pydicom's value converters
and ``DataElement.to_json_dict`` apply, so the result is identical to
:mod:`fastdump.convert`'s. A value pydicom would reject or alter in an
unusual way raises :class:`~fastdump.fastread.Unsupported`: the whole file
then goes through pydicom, which reports it the usual way.

Compiled like :mod:`fastdump.fastread` (types in ``fastjson.pxd``): there, each
value goes to its VR's function by a direct C call (:func:`_value_of`), and a
single 16 or 32-bit integer is read straight from its bytes.
"""

from __future__ import annotations

import re
import struct
from base64 import b64encode
from typing import Any

try:
    import cython  # compiled (setup.py): cython.compiled is True, its branches are C
except ImportError:  # plain Python, Cython not installed
    from .hotpath import NoCython as cython

from . import charset, dicom, fastread
from .dicom import BINARY_VRS, TAG_KEYS
from .errors import TruncatedError
from .fastread import REJECTED_VALUE, Header, RawDataset, Unsupported, read_header
from .selection import selected_warnings
from .source import file_uri
from .types import ReadSettings

if not cython.compiled:  # compiled, fastjson.pxd cimports them: C functions
    from .fastread import _get16, _get32, decode_text

COMPILED: bool = cython.compiled  # True in the compiled module (see setup.py)
# Which hot path runs: "compiled" (both modules of the fast path are, see setup.py)
# or "pure" (plain Python: no C compiler at install, or FASTDUMP_PURE=1).
HOT_PATH = "compiled" if COMPILED and fastread.COMPILED else "pure"

_NUMBERS = dicom.NUMBER_FORMATS
_SIZES = dicom.NUMBER_SIZES
_IS_TOKEN = re.compile(rb" *[+-]?[0-9]{1,15} *")


def fast_record(path: str, size: int, mtime: float | None,
                settings: ReadSettings) -> dict[str, Any]:
    """The dump.jsonl record of ``path``; raises Unsupported when pydicom must read it."""
    header = read_header(path, settings, size)
    return record_from_header(header, path, size, mtime, settings)


def record_from_header(header: Header, path: str, size: int, mtime: float | None,
                       settings: ReadSettings) -> dict[str, Any]:
    conv = _Converter(path, dicom.inline_max(dicom.NO_BULK) if header.inflated
                      else settings.inline_max)
    meta, dataset = conv.dataset(header.meta, ""), conv.dataset(header.dataset, "")
    if header.truncated is not None:  # the whole header was read: it is the partial record
        raise TruncatedError(header.truncated, {"meta": meta, "dataset": dataset})
    warned = conv.warnings
    if warned and settings.tags:
        warned = selected_warnings(warned, settings.tags)
    return dicom.record(path, size, mtime, meta, dataset, warned)


class Rejected(Exception):
    """A value pydicom reads but its ``to_json_dict`` fails on (an IS of ``1A``).

    As :func:`fastdump.convert._raw_fallback` does, the element is kept as UN with
    its bytes inline, and the failure is one of the record's warnings.
    """

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _Converter:
    def __init__(self, path: str, inline_max: int) -> None:
        self.path = path
        self.inline_max = inline_max  # longest binary value written inline
        self.warnings: list[dict[str, str]] = []

    def bulk(self, vr: str, offset: int, length: int) -> dict[str, str]:
        # the URI is built only for files that have bulk values (--tags: few do)
        return {"vr": vr, "BulkDataURI": dicom.bulk_uri(file_uri(self.path), offset, length)}

    def dataset(self, ds: RawDataset, where: str) -> dict[str, Any]:
        """``ds`` as DICOM JSON; ``where``: its path in the record's warnings
        (``"300A00B0[0]."`` for an item of a sequence, as the pydicom path names it)."""
        out: dict[str, Any] = {}
        encodings = ds.encodings
        latin1 = dicom.is_latin1(encodings)
        big = ds.big_endian
        converters = _VALUE_BE if big else _VALUE
        for tag, vr, value, offset, length in ds.elements:
            key = TAG_KEYS[tag]
            if vr == "SQ":
                out[key] = {"vr": "SQ", "Value": [
                    self.dataset(item, f"{where}{key}[{i}].") for i, item in enumerate(value)]}
            elif vr in BINARY_VRS:
                out[key] = self.binary(vr, value, offset, length)
            elif value is None and length:  # deferred under --bulk-any-vr
                out[key] = self.bulk(vr, offset, length)
            elif not length:
                out[key] = {"vr": vr}
            else:
                try:
                    if cython.compiled:
                        values = _value_of(_KIND.get(vr, 0), vr, value, encodings, latin1,
                                           big, converters)
                    else:
                        values = converters[vr](value, encodings, latin1)
                except Rejected as exc:
                    out[key] = self.rejected(ds, tag, vr, value, where + key, exc.error)
                    continue
                if vr == "SS" and tag in dicom.LUT_DESCRIPTORS and len(values) > 1:
                    values = _lut_descriptor(values)
                out[key] = {"vr": vr, "Value": values} if values else {"vr": vr}
        if ds.unknown_names is not None:  # after its elements', as the pydicom path
            self.warnings += [{"tag": where + "00080005", "vr": "CS",
                               "error": charset.unknown_name(name)}
                              for name in ds.unknown_names]
        return out

    def rejected(self, ds: RawDataset, tag: int, vr: str, value: bytes, where: str,
                 error: str) -> dict[str, Any]:
        if len(value) > self.inline_max > 0:
            # pydicom deferred it: the pydicom path points at its bytes instead
            raise Unsupported(REJECTED_VALUE, f"long {vr} value pydicom rejects")
        # the VR pydicom names is the file's: none (implicit VR) counts as UN
        named = "UN" if ds.implicit or (ds.from_un is not None and tag in ds.from_un) else vr
        self.warnings.append({"tag": where, "vr": named, "error": error})
        return {"vr": "UN", "InlineBinary": b64encode(value).decode("ascii")}

    def binary(self, vr: str, value: bytes | None, offset: int, length: int) -> dict[str, Any]:
        if not length:
            return {"vr": vr}
        if length > self.inline_max or value is None:  # (None: not read, as it is long)
            return self.bulk(vr, offset, length)
        return {"vr": vr, "InlineBinary": b64encode(value).decode("ascii")}


def _lut_descriptor(values: list[int]) -> list[int]:
    # pydicom reads the first LUT Descriptor value as unsigned whatever the VR
    if values[0] < 0:
        values[0] += 65536
    return values


# --- one function per VR: bytes -> the "Value" list (empty: no Value) -------


def _listed(items: list) -> list:
    """pydicom's VM rule: one empty string is no value; several are kept."""
    if len(items) == 1 and not items[0]:
        return []
    return items


def _ascii_multi(value: bytes, encodings: Any, latin1: bool) -> list[str]:
    # AS, CS, DA, DT, TM: default repertoire, trailing padding of the whole value
    return _listed(value.decode("latin-1").rstrip(" \x00").split("\\"))


def _ae(value: bytes, encodings: Any, latin1: bool) -> list[str]:
    return _listed([s.strip() for s in value.decode("latin-1").split("\\")])


def _ui(value: bytes, encodings: Any, latin1: bool) -> list[str]:
    # pydicom's UID class strips each value
    text = value.decode("latin-1").rstrip("\0 ")
    if "\\" not in text:  # the usual single UID, without the list's cost
        text = text.strip()
        return [text] if text else []
    return [s.strip() for s in text.split("\\")]


def _ur(value: bytes, encodings: Any, latin1: bool) -> list[str]:
    # one value: a backslash is part of it (PS3.5: UR is never multi-valued; pydicom
    # reads it so, where this split it before)
    return _listed([value.decode("latin-1").rstrip()])


def _text_multi(value: bytes, encodings: Any, latin1: bool) -> list[str]:
    # SH, LO, UC: each value loses its trailing padding
    text = decode_text(value, encodings, latin1)
    if "\\" not in text:  # one value, without the list's cost
        text = text.rstrip("\0 ")
        return [text] if text else []
    return [s.rstrip("\0 ") for s in text.split("\\")]


def _text_single(value: bytes, encodings: Any, latin1: bool) -> list[str]:
    # ST, LT, UT: backslash is text, not a separator
    return _listed([decode_text(value, encodings, latin1).rstrip("\0 ")])


def _pn(value: bytes, encodings: Any, latin1: bool) -> list[dict[str, str]]:
    names = decode_text(value.rstrip(b"\x00 "), encodings, latin1).split("\\")
    if not latin1:
        _check_pn_encodable(names, encodings)
    out = []
    for name in names:
        groups = name.split("=")
        while groups and not groups[-1]:
            groups.pop()
        if not groups:
            if len(names) == 1:
                return []
            # pydicom's to_json_dict fails on an empty name among several
            raise Unsupported(REJECTED_VALUE, "empty person name among several")
        comps = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            comps["Ideographic"] = groups[1]
        if len(groups) > 2:
            comps["Phonetic"] = groups[2]
        out.append(comps)
    return out


def _check_pn_encodable(names: list[str], encodings: Any) -> None:
    # pydicom re-encodes every name while reading; mirror any failure of it.
    for name in names:
        try:
            charset.check_person_name(name, encodings)
        except charset.NotAsPydicom as exc:
            raise Unsupported(REJECTED_VALUE, str(exc)) from exc


def _ds(value: bytes, encodings: Any, latin1: bool) -> list[float]:
    text = value.decode("latin-1").strip().rstrip(" \x00")
    if not text:
        return []
    items = text.split("\\")
    out = []
    for item in items:
        if not item.strip():
            return _numbers_as_pydicom(value, encodings, latin1, "DS")
        try:
            number = float(item)  # what pydicom's DSfloat does
        except ValueError:
            return _numbers_as_pydicom(value, encodings, latin1, "DS")
        if number - number != 0.0:  # NaN, or infinity (x - x is NaN for both)
            raise Rejected(f"ValueError: {dicom.NOT_FINITE}")
        out.append(number)
    return out


def _is(value: bytes, encodings: Any, latin1: bool) -> list[int]:
    items = value.rstrip(b" \x00").split(b"\\")
    if len(items) == 1 and not items[0]:
        return []
    out = []
    for item in items:
        if not _IS_TOKEN.fullmatch(item):
            return _numbers_as_pydicom(value, encodings, latin1, "IS")
        out.append(int(item))
    return out


def _numbers_as_pydicom(value: bytes, encodings: Any, latin1: bool, vr: str) -> list:
    """A DS or IS value outside the plain forms, as pydicom reads and writes it.

    pydicom converts each value (``DSfloat``, ``IS``; a blank one stays a string);
    when one fails with ValueError it reads the whole value as SH text instead;
    ``to_json_dict`` then takes ``float()`` or ``int()`` of each, and a failure
    there is :class:`Rejected`. Text in another character set is Unsupported.
    """
    text = value.decode("latin-1")
    if not latin1 or "\x1b" in text:  # SH text decodes with the dataset's character sets
        raise Unsupported(REJECTED_VALUE, f"{vr} value read as text in another character set")
    items: list = (text.strip() if vr == "DS" else text).rstrip(" \x00").split("\\")
    numbers: list = []
    for item in items:
        if not item.strip():
            numbers.append(item)  # kept as the string: to_json_dict's number() fails on it
            continue
        number = _float_as_pydicom(item) if vr == "DS" else _int_as_pydicom(item)
        if number is None:  # pydicom reads the value as SH
            numbers = _text_multi(value, encodings, latin1)
            break
        numbers.append(number)
    to_number = float if vr == "DS" else int
    try:
        written = [to_number(v) for v in numbers]
    except (ValueError, OverflowError) as exc:
        raise Rejected(f"{type(exc).__name__}: {exc}") from None
    if vr == "IS" and any(isinstance(v, float) for v in numbers):  # pydicom's ISfloat
        raise Rejected(f"ValueError: {dicom.NOT_WHOLE}")
    if vr == "DS" and any(v - v != 0.0 for v in written):
        raise Rejected(f"ValueError: {dicom.NOT_FINITE}")
    return written


def _float_as_pydicom(item: str) -> float | None:
    """``DSfloat(item)``; None where it raises ValueError."""
    try:
        return float(item)
    except ValueError:
        return None


def _int_as_pydicom(item: str) -> int | float | None:
    """``IS(item)`` as to_json_dict's ``int()`` sees it; None where it raises ValueError.

    pydicom keeps a value with a fraction (or beyond a float's precision) as a
    float (``ISfloat``), which ``int()`` later truncates.
    """
    try:
        number = int(item)
    except ValueError:
        try:
            real = float(item)
        except ValueError:
            return None
        try:
            number = int(real)
        except ValueError:
            return None  # NaN
        except OverflowError as exc:  # infinity: not a ValueError, pydicom's read fails
            raise Rejected(f"OverflowError: {exc}") from None
        return real if number != real else number
    try:
        real = float(item)  # pydicom compares the two
    except ValueError:
        return None
    return real if number != real else number


def _number(vr: str, order: str):
    fmt, size = _NUMBERS[vr], _SIZES[vr]
    one = struct.Struct(order + fmt).unpack  # most values hold one number
    floats = vr in dicom.FLOAT_VRS

    def convert(value: bytes, encodings: Any, latin1: bool) -> list:
        n = len(value)
        if n % size:
            raise Unsupported(REJECTED_VALUE, f"{vr} value of {n} bytes")
        numbers = list(one(value) if n == size else
                       struct.unpack(f"{order}{n // size}{fmt}", value))
        if floats:
            for number in numbers:
                if number - number != 0.0:  # NaN, or infinity
                    raise Rejected(f"ValueError: {dicom.NOT_FINITE}")
        return numbers

    return convert


def _at(order: str):
    def convert(value: bytes, encodings: Any, latin1: bool) -> list[str]:
        if len(value) % 4:
            raise Unsupported(REJECTED_VALUE, f"AT value of {len(value)} bytes")
        words = struct.unpack(f"{order}{len(value) // 2}H", value)
        return [f"{words[i] << 16 | words[i + 1]:08X}" for i in range(0, len(words), 2)]

    return convert


_TEXT = {
    "AE": _ae, "AS": _ascii_multi, "CS": _ascii_multi, "DA": _ascii_multi,
    "DT": _ascii_multi, "TM": _ascii_multi, "UI": _ui, "UR": _ur,
    "SH": _text_multi, "LO": _text_multi, "UC": _text_multi,
    "ST": _text_single, "LT": _text_single, "UT": _text_single,
    "PN": _pn, "DS": _ds, "IS": _is,
}
# VR -> its converter, for little and for big endian datasets
_VALUE = {**_TEXT, "AT": _at("<"), **{vr: _number(vr, "<") for vr in _NUMBERS}}
_VALUE_BE = {**_TEXT, "AT": _at(">"), **{vr: _number(vr, ">") for vr in _NUMBERS}}


# -- compiled: a value's converter by direct C calls ------------------------------------------

# VR -> which function converts it (0: the one in _VALUE / _VALUE_BE)
_DS, _TEXT_MULTI, _ASCII_MULTI, _IS, _UI, _TEXT_SINGLE, _PN, _US, _UL, _SS, _SL = range(1, 12)
_KIND = {"DS": _DS, "LO": _TEXT_MULTI, "SH": _TEXT_MULTI, "UC": _TEXT_MULTI,
         "CS": _ASCII_MULTI, "DA": _ASCII_MULTI, "TM": _ASCII_MULTI, "DT": _ASCII_MULTI,
         "AS": _ASCII_MULTI, "IS": _IS, "UI": _UI, "ST": _TEXT_SINGLE, "LT": _TEXT_SINGLE,
         "UT": _TEXT_SINGLE, "PN": _PN, "US": _US, "UL": _UL, "SS": _SS, "SL": _SL}


def _value_of(kind: int, vr: str, value: bytes, encodings: Any, latin1: bool, big: bool,
              converters: dict) -> list:
    """``converters[vr](value, encodings, latin1)``, the usual VRs called directly."""
    if kind == _DS:
        return _ds(value, encodings, latin1)
    if kind == _TEXT_MULTI:
        return _text_multi(value, encodings, latin1)
    if kind == _ASCII_MULTI:
        return _ascii_multi(value, encodings, latin1)
    if kind >= _US and len(value) == (2 if kind == _US or kind == _SS else 4):
        # one integer (several: struct, in converters)
        if kind == _US:
            return [_get16(value, 0, big)]
        if kind == _UL:
            return [_get32(value, 0, big)]
        if kind == _SS:
            number = _get16(value, 0, big)
            return [number - 0x10000 if number >= 0x8000 else number]
        number = _get32(value, 0, big)
        return [number - 0x100000000 if number >= 0x80000000 else number]
    if kind == _IS:
        return _is(value, encodings, latin1)
    if kind == _UI:
        return _ui(value, encodings, latin1)
    if kind == _TEXT_SINGLE:
        return _text_single(value, encodings, latin1)
    if kind == _PN:
        return _pn(value, encodings, latin1)
    return converters[vr](value, encodings, latin1)


__all__ = ["HOT_PATH", "Unsupported", "fast_record", "record_from_header"]
