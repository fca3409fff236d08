"""``--tags``: dump only some top-level elements, and stop reading after them.

A record of a selection is the full record with the other top-level elements
(and their warnings) left out: a selected sequence comes whole, the meta group
always. Reading stops at the first element past the largest selected tag (or
past what interpreting them needs: the character set, Pixel Representation
for 'US or SS' values, the private creators of selected private tags).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from . import dicom, dictionary
from .errors import OptionError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from .source import BoundedReader

_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
# "(0010,0010)", as dcmdump and --format tags write a tag: one item of the list
_PAIR = re.compile(r"\(\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)")
# the commas that separate items: not one inside parentheses, "(zzzz,0010)" as written
_ITEMS = re.compile(r",(?![^(]*\))")
# the same with a repeating group's x digits, (60xx,0010): joined, then refused as a mask
_MASK_PAIR = re.compile(r"\(\s*([0-9A-Fa-fXx]{4})\s*,\s*([0-9A-Fa-fXx]{4})\s*\)")


def parse_tags(spec: str | Iterable[str | int] | None) -> frozenset[int] | None:
    """``"PatientID,0020000D,(0008,0060)"`` (or a list of keywords/ints) -> a set of tags.

    Raises :class:`~fastdump.errors.OptionError` naming an unknown keyword.
    """
    if spec is None:
        return None
    if isinstance(spec, int):
        spec = [spec]
    if not isinstance(spec, (str, Iterable)):
        raise OptionError(f"tags must be a string (\"PatientID,00080060\") or a list of "
                          f"keywords and ints, not {type(spec).__name__}")
    items = _ITEMS.split(_MASK_PAIR.sub(r"\1\2", spec)) if isinstance(spec, str) else list(spec)
    tags = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            tags.add(_checked(item, str(item)))
            continue
        if not isinstance(item, str):
            raise OptionError(f"tags: {item!r} is neither a keyword nor a tag number")
        item = item.strip()
        if item:
            tags.add(_tag_of(item))
    if not tags:
        raise OptionError("--tags needs at least one tag, e.g. --tags PatientID,StudyInstanceUID")
    return frozenset(tags)


def _tag_of(item: str) -> int:
    if _HEX_TAG.fullmatch(item):
        return _checked(int(item, 16), item)
    if pair := _PAIR.fullmatch(item):  # an item of a list: not split at its comma
        return _checked(int(pair[1] + pair[2], 16), item)
    tag = dictionary.tag_for_keyword(item)
    if tag is None and (mask := dictionary.repeating_mask(item)):
        raise OptionError(f"--tags: {item!r} names a repeating group's elements ({mask}), one "
                          "for each group: give those you want as 8 hex digits, e.g. "
                          f"{mask.replace('x', '0').upper()}")
    if tag is None:
        hint = dictionary.did_you_mean(item)
        raise OptionError(
            f"--tags: unknown DICOM keyword {item!r}{hint}; give keywords as in the standard "
            "(PatientID, StudyInstanceUID) or tags as 8 hex digits (00100020) or (0010,0020)"
        )
    return _checked(tag, item)


def _checked(tag: int, item: str) -> int:
    if not 0 <= tag <= 0xFFFFFFFF or tag >> 16 in (0x0002, 0xFFFE):
        raise OptionError(
            f"--tags: {item!r} is not a dataset element (the meta group is always written; "
            "item tags are not elements)"
        )
    if tag in dicom.PIXEL_TAGS:  # it would select nothing, silently, in every file
        raise OptionError(
            f"--tags: {item!r} is pixel data, which fastdump never reads: it dumps headers, "
            "reading each file up to its pixel data (a full dump has no pixel data either)"
        )
    return tag


def select(record: dict[str, Any], tags: frozenset[int]) -> dict[str, Any]:
    """The record with only the selected top-level elements (and their warnings)."""
    record["dataset"] = {k: v for k, v in record["dataset"].items() if int(k, 16) in tags}
    if "warnings" in record:
        kept = selected_warnings(record["warnings"], tags)
        if kept:
            record["warnings"] = kept
        else:
            del record["warnings"]
    return record


def selected_warnings(warnings: list[dict[str, str]], tags: frozenset[int]
                      ) -> list[dict[str, str]]:
    """The warnings of the selected top-level elements (their tag path starts with one)."""
    return [w for w in warnings if int(w["tag"][:8], 16) in tags]


def read_selected(fp: BoundedReader, defer_size: int | None, force: bool,
                  tags: frozenset[int]) -> Dataset:
    """pydicom's read of the selected elements, stopping after the last one it needs."""
    from pydicom.filereader import read_partial

    wanted = set(tags) | {dicom.CHARSET}
    if tags & dicom.US_OR_SS:  # their VR may depend on it
        wanted.add(dicom.PIXEL_REPRESENTATION)
    wanted |= {dicom.private_creator_of(t) for t in tags if t >> 16 & 1}
    bound = max(wanted)

    def stop(tag: int, vr: Any, length: int) -> bool:
        return tag in dicom.PIXEL_TAGS or tag > bound

    # a BoundedReader reads like the binary file pydicom asks for
    return read_partial(cast("BinaryIO", fp), stop, defer_size=defer_size, force=force,
                        specific_tags=sorted(wanted))
