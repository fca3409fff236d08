"""The pydicom path, part 2: a pydicom Dataset -> the DICOM JSON Model (PS3.18 Annex F.2).

The output is what pydicom's ``Dataset.to_json_dict`` gives, with four
differences that keep data instead of losing it, or keep the output valid:

* a value that was deferred (too large to inline) becomes a ``BulkDataURI``
  pointing at its bytes in the file, without reading them;
* an element whose value pydicom cannot convert (a DS that is not a number,
  bytes invalid in their character set...) is kept as ``UN`` with its raw bytes
  in ``InlineBinary`` and reported in ``warnings``, instead of losing the file;
* elements inside sequence items are converted one by one, so one bad nested
  value does not lose the whole sequence;
* a binary element whose VR pydicom leaves ambiguous (``OB or OW``: Curve Data
  of an Implicit VR file...) is written as ``OW``, the VR PS3.5 A.1 gives such
  data in Implicit VR Little Endian, instead of a "vr" that is not a VR.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import VR, ISfloat

from . import charset, compat, dicom
from .types import ReadSettings


@dataclass
class Context:
    """What conversion of one file needs to know, and what it found."""

    uri: str  # file:// URI of the file, the base of its BulkDataURIs
    settings: ReadSettings
    warnings: list[dict[str, str]] = field(default_factory=list)

    def bulk_uri(self, offset: int, length: int) -> str:
        return dicom.bulk_uri(self.uri, offset, length)


def dataset_to_json(ds: Dataset, ctx: Context, where: str = "", base: int = 0) -> dict[str, Any]:
    """Convert every element of ``ds``; never raises for a bad value.

    ``base`` is the file offset that the element offsets of ``ds`` count from:
    0 at the top level, but pydicom parses items of a defined-length sequence
    from a copy of its bytes, and their offsets count from the sequence value.
    """
    out: dict[str, Any] = {}
    checked = not dicom.never_fails(compat.character_sets(ds))
    for tag in list(ds.keys()):
        key = dicom.TAG_KEYS[tag]
        raw = ds.get_item(tag, keep_deferred=True)
        try:
            if checked:
                out[key] = _strictly_decoded(ds, tag, raw, ctx, where + key, base)
            else:
                out[key] = _element_to_json(ds, tag, raw, ctx, where + key, base)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the raw bytes
            out[key] = _raw_fallback(ds, raw, ctx, where + key, base, exc)
        if out[key]["vr"] in dicom.AMBIGUOUS_VRS and "Value" not in out[key]:
            out[key]["vr"] = "OW"  # its bytes, as the file holds them
    if dicom.CHARSET in ds:
        _check_charset_names(ds, ctx, where)
    return out


class CharsetError(ValueError):
    """Text bytes that are not valid in the declared character set."""


def _strictly_decoded(
    ds: Dataset, tag: int, raw: RawDataElement | DataElement, ctx: Context, where: str,
    base: int,
) -> dict[str, Any]:
    # pydicom replaces undecodable bytes with U+FFFD and only warns: that would
    # silently alter the value, so such an element keeps its raw bytes instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        element = _element_to_json(ds, tag, raw, ctx, where, base)
    for warning in caught:
        if "decode" in str(warning.message):
            raise CharsetError(str(warning.message))
    return element


def _check_charset_names(ds: Dataset, ctx: Context, where: str) -> None:
    value = ds.get_item(dicom.CHARSET).value
    names = [value] if isinstance(value, str | bytes) else list(value or [])
    for name in names:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        if name and name not in python_encoding:
            ctx.warnings.append({"tag": where + "00080005", "vr": "CS",
                                 "error": charset.unknown_name(name)})


def _element_to_json(
    ds: Dataset, tag: int, raw: RawDataElement | DataElement, ctx: Context, where: str,
    base: int,
) -> dict[str, Any]:
    bulk_vrs = ctx.settings.bulk_vrs
    if _deferred_with_length(raw):
        vr = _deferred_vr(ds, tag, raw)
        if vr in bulk_vrs:
            return {"vr": vr, "BulkDataURI": ctx.bulk_uri(base + raw.value_tell, raw.length)}
    elem = ds[tag]
    # Not the file meta group: pydicom reads it whole, and the fast path writes what it read
    # (a long ST there under --bulk-any-vr was a BulkDataURI in this path only, where
    # pydicom had left the element raw)
    if elem.VR in bulk_vrs and elem.VR not in dicom.BINARY_VRS and elem.file_tell is not None \
            and elem.tag.group != 2:
        length = raw.length if isinstance(raw, RawDataElement) else _converted_length(elem)
        if (length and length != dicom.UNDEFINED_LENGTH
                and length > ctx.settings.inline_max):
            return {"vr": elem.VR, "BulkDataURI": ctx.bulk_uri(base + elem.file_tell, length)}
    if elem.VR == VR.SQ:
        inner = base
        if isinstance(raw, RawDataElement) and raw.length != dicom.UNDEFINED_LENGTH:
            inner += raw.value_tell  # a defined-length sequence: items count from its value
        items = [
            dataset_to_json(item, ctx, f"{where}[{i}].", inner)
            for i, item in enumerate(elem.value)
        ]
        return {"vr": "SQ", "Value": items}
    converted = elem.to_json_dict(
        bulk_data_element_handler=lambda e: ctx.bulk_uri(base + cast(int, e.file_tell),
                                                          len(e.value)),
        bulk_data_threshold=ctx.settings.bulk_threshold,
    )
    if elem.VR == VR.IS or elem.VR in dicom.FLOAT_VRS:
        _check_numbers(elem, converted)
    return converted


def _check_numbers(elem: DataElement, converted: dict[str, Any]) -> None:
    """Raise ValueError for numbers JSON would not hold as the file does (see
    :data:`fastdump.dicom.NOT_FINITE`); the element then keeps its raw bytes."""
    if elem.VR == VR.IS:
        values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
        if any(isinstance(v, ISfloat) for v in values):
            raise ValueError(dicom.NOT_WHOLE)
    elif any(isinstance(v, float) and v - v != 0.0 for v in converted.get("Value", ())):
        raise ValueError(dicom.NOT_FINITE)


def _converted_length(elem: DataElement) -> int | None:
    """The length in the file of a dataset value pydicom converted before its turn,
    its raw length gone: Pixel Representation, which pydicom reads when a sequence
    before it is converted. As long as any other, it is left out as any other (the
    fast path's rule, and the one for files without such a sequence). (Not asked for
    the file meta group, which is written as read.)"""
    size = dicom.NUMBER_SIZES.get(elem.VR)
    return size * elem.VM if size else None


def _deferred_with_length(raw: RawDataElement | DataElement) -> TypeGuard[RawDataElement]:
    """Whether ``raw`` is a value pydicom deferred whose length the file states.

    pydicom also defers a long value of undefined length that is not a sequence
    (encapsulated pixel data outside Pixel Data): its length is then unknown
    until pydicom reads it, on access.
    """
    return (isinstance(raw, RawDataElement) and raw.value is None
            and 0 < raw.length != dicom.UNDEFINED_LENGTH)


def _deferred_vr(ds: Dataset, tag: int, raw: RawDataElement) -> str:
    """The VR pydicom would give a deferred element, found without reading its value."""
    # Converting an empty stand-in runs pydicom's own VR logic (implicit VR
    # lookup, private dictionaries, ambiguous-VR correction) at no I/O cost.
    elements = compat.raw_elements(ds)
    elements[tag] = raw._replace(value=b"", length=0)
    try:
        return ds[tag].VR
    finally:
        elements[tag] = raw


def _raw_fallback(
    ds: Dataset,
    raw: RawDataElement | DataElement,
    ctx: Context,
    where: str,
    base: int,
    exc: Exception,
) -> dict[str, Any]:
    compat.raw_elements(ds)[raw.tag] = raw  # undo a half-done conversion
    vr = raw.VR or "UN"
    ctx.warnings.append({"tag": where, "vr": str(vr), "error": f"{type(exc).__name__}: {exc}"})
    value = raw.value if isinstance(raw, RawDataElement) else None
    if isinstance(value, bytes) and value:
        return {"vr": "UN", "InlineBinary": base64.b64encode(value).decode("ascii")}
    if _deferred_with_length(raw):
        return {"vr": "UN", "BulkDataURI": ctx.bulk_uri(base + raw.value_tell, raw.length)}
    return {"vr": "UN"}
