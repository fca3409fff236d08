"""pydicom's data dictionaries, read without importing pydicom.

Importing pydicom costs a quarter to half a second (it brings numpy and more),
most of a one-file dump. The fast path needs only its dictionaries: the VR of a
tag (implicit VR files), of a private tag for its creator, and the tag of a
keyword. Those are plain data modules inside pydicom, loaded here by file
(:func:`fastdump.compat.pydicom_data`) and looked up with pydicom's own rules,
restated below; ``tests/test_dictionary.py`` checks every entry against
pydicom's functions. Once pydicom is imported in the process, its live
dictionaries are used, so entries a program added to them count too.
"""

from __future__ import annotations

import sys
from functools import cache

from . import compat

Entry = tuple[str, ...]  # (VR, VM, name, retired[, keyword])


@cache
def _file_tables() -> tuple[dict[int, Entry], dict[str, Entry], dict[str, dict[str, Entry]]]:
    public = compat.pydicom_data("_dicom_dict")
    private = compat.pydicom_data("_private_dict")
    return public.DicomDictionary, public.RepeatersDictionary, private.private_dictionaries


def _tables() -> tuple[dict[int, Entry], dict[str, Entry], dict[str, dict[str, Entry]]]:
    datadict = sys.modules.get("pydicom.datadict")
    if datadict is not None:
        return (datadict.DicomDictionary, datadict.RepeatersDictionary,
                datadict.private_dictionaries)
    return _file_tables()


def get_entry(tag: int) -> Entry | None:
    """pydicom's ``get_entry``: the public dictionary, then its repeating groups."""
    public, repeaters, _ = _tables()
    try:
        return public[tag]
    except KeyError:
        pass
    if tag >> 16 & 1:
        return None
    # pydicom's mask_match: "60xx3000" -> the bits that must match, and those that count
    for mask_x, entry in repeaters.items():
        mask1 = int(mask_x.replace("x", "0"), 16)
        mask2 = int("".join("F0"[c == "x"] for c in mask_x), 16)
        if (tag ^ mask1) & mask2 == 0:
            return entry
    return None


def dictionary_vr(tag: int) -> str | None:
    """pydicom's ``dictionary_VR`` (and ``_dictionary_vr_fast``); None for an unknown tag."""
    entry = get_entry(tag)
    return None if entry is None else entry[0]


def dictionary_vm(tag: int) -> str | None:
    entry = get_entry(tag)
    return None if entry is None else entry[1]


def private_vr(tag: int, creator: str) -> str | None:
    """pydicom's ``private_dictionary_VR``; None when the creator or the tag is unknown."""
    block = _tables()[2].get(creator)
    if block is None:
        return None
    group, elem = f"{tag >> 16:04X}", f"{tag & 0xFFFF:04X}"
    # private elements are usually agnostic of their block: "xx" in its place
    for key in (group + elem, f"{group}xx{elem[-2:]}", f"{group[:2]}xxxx{elem[-2:]}"):
        entry = block.get(key)
        if entry is not None:
            return entry[0]
    return None


_keywords: dict[int, dict[str, int]] = {}  # id of a public dictionary -> its keywords


def keyword_dict() -> dict[str, int]:
    """pydicom's ``keyword_dict``: keyword -> tag."""
    public = _tables()[0]
    found = _keywords.get(id(public))
    if found is None:
        found = _keywords[id(public)] = {entry[4]: tag for tag, entry in public.items()}
    return found


def tag_for_keyword(keyword: str) -> int | None:
    return keyword_dict().get(keyword)


def did_you_mean(name: str) -> str:
    """`` (did you mean PatientID?)`` for a keyword misspelt or in the wrong case; "" if
    none is close."""
    import difflib

    keywords = keyword_dict()
    same = [k for k in keywords if k.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, list(keywords), n=3, cutoff=0.75)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def repeating_mask(name: str) -> str | None:
    """The mask (``"60xx0010"``) of a repeating group's element named by its keyword
    (OverlayRows) or by the mask itself (``60xx0010``, ``(60xx,0010)``), which names no
    one tag: one element for each group of the range."""
    spelled = "".join(ch for ch in name if ch not in "(), ").lower()
    return next((mask for mask, entry in _tables()[1].items()
                 if entry[4] == name or mask.lower() == spelled), None)

