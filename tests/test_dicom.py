"""fastdump.dicom restates a few of pydicom's constants, so that the fast path can
start without pydicom: they must still agree with pydicom's own."""

from __future__ import annotations

from pydicom import uid
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.filewriter import _AMBIGUOUS_US_SS_TAGS
from pydicom.tag import _LUT_DESCRIPTOR_TAGS
from pydicom.valuerep import AMBIGUOUS_VR, BYTES_VR, EXPLICIT_VR_LENGTH_32, TEXT_VR_DELIMS, VR

from fastdump import dicom


def test_vr_sets_agree_with_pydicom():
    assert dicom.BINARY_VRS == {str(v) for v in (BYTES_VR | AMBIGUOUS_VR) - {VR.US_SS}}
    assert dicom.AMBIGUOUS_VRS == {str(v) for v in AMBIGUOUS_VR}
    assert dicom.LONG_LENGTH_VRS == {str(v) for v in EXPLICIT_VR_LENGTH_32}
    assert dicom.VR_NAMES == {str(v.value) for v in VR if len(v.value) == 2}
    assert dicom.TEXT_VR_DELIMS == set(TEXT_VR_DELIMS)
    assert dicom.DEFAULT_ENCODING == default_encoding


def test_tag_sets_agree_with_pydicom():
    assert dicom.LUT_DESCRIPTORS == set(_LUT_DESCRIPTOR_TAGS)
    # every one is 'US or SS' in the dictionary, and they are all that pydicom resolves
    # with Pixel Representation (a subset alone would let a missing tag go unnoticed)
    assert all(dictionary_VR(tag) == "US or SS" for tag in dicom.US_OR_SS)
    assert dicom.US_OR_SS == set(_AMBIGUOUS_US_SS_TAGS)
    assert dictionary_VR(dicom.CHARSET) == "CS"
    assert dictionary_VR(dicom.PIXEL_REPRESENTATION) == "US"


def test_transfer_syntaxes_agree_with_pydicom():
    assert dicom.IMPLICIT_LE == uid.ImplicitVRLittleEndian
    assert dicom.EXPLICIT_LE == uid.ExplicitVRLittleEndian
    assert dicom.EXPLICIT_BE == uid.ExplicitVRBigEndian
    assert dicom.DEFLATED_LE == uid.DeflatedExplicitVRLittleEndian


def test_private_creators():
    assert dicom.is_private_creator(0x00090010) and dicom.is_private_creator(0x001900FF)
    assert not dicom.is_private_creator(0x00091010) and not dicom.is_private_creator(0x00080010)
    assert dicom.private_creator_of(0x00191012) == 0x00190010
    assert dicom.private_creator_of(0x0043FF01) == 0x004300FF


def test_inline_max_is_three_quarters_of_the_base64_threshold():
    assert [dicom.inline_max(t) for t in (0, 4, 1024, 1023)] == [0, 3, 768, 765]


def test_bounded_cache_stops_growing():
    calls = []
    cache = dicom.BoundedCache(lambda k: calls.append(k) or k * 2, limit=2)
    assert [cache[k] for k in (1, 2, 3, 1, 3)] == [2, 4, 6, 2, 6]
    assert len(cache) == 2 and calls == [1, 2, 3, 3]  # 3 came after the bound: computed again
