"""fastdump.dictionary answers as pydicom.datadict does, for every entry."""

from __future__ import annotations

import subprocess
import sys

from pydicom import datadict
from pydicom._private_dict import private_dictionaries

from fastdump import dictionary


def pydicom_vr(lookup, *args):
    try:
        return str(lookup(*args))
    except KeyError:
        return None


def test_every_public_tag_and_repeater():
    tags = list(datadict.DicomDictionary) + [0x60003000, 0x601E3000, 0x50000010, 0x7F112010,
                                             0x00090010, 0x00191000, 0x12345678, 0x00280108]
    tags += [int(mask.replace("x", "2"), 16) for mask in datadict.RepeatersDictionary]
    for tag in tags:
        assert dictionary.dictionary_vr(tag) == pydicom_vr(datadict.dictionary_VR, tag), hex(tag)
        assert dictionary.dictionary_vr(tag) == pydicom_vr(datadict._dictionary_vr_fast, tag)
        assert dictionary.dictionary_vm(tag) == pydicom_vr(datadict.dictionary_VM, tag)


def test_every_private_entry():
    checked = 0
    for creator, entries in private_dictionaries.items():
        for key in entries:
            for block in ("10", "1F"):
                tag = int(key.replace("xx", block, 1).replace("xx", "00"), 16)
                assert dictionary.private_vr(tag, creator) == pydicom_vr(
                    datadict.private_dictionary_VR, tag, creator), (creator, key)
                checked += 1
    assert checked > 10_000
    assert dictionary.private_vr(0x00191010, "NO SUCH CREATOR") is None


def test_keywords():
    assert dictionary.keyword_dict() == datadict.keyword_dict
    assert dictionary.tag_for_keyword("PatientID") == 0x00100020
    assert dictionary.tag_for_keyword("NoSuchKeyword") is None


def test_loaded_without_importing_pydicom():
    code = ("import sys; from fastdump import dictionary; "
            "assert dictionary.dictionary_vr(0x00100010) == 'PN'; "
            "assert dictionary.private_vr(0x00431001, 'GEMS_PARM_01') == 'SS'; "
            "assert 'pydicom' not in sys.modules, sorted(m for m in sys.modules if 'pydicom' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
