"""--tags: which tags a selection names, and the one-line refusal of what it cannot use.

That a selection reads the same elements as the full dump, on both read paths,
is tested file by file in test_fastread.py.
"""

from __future__ import annotations

import pytest

from fastdump.cli import main
from fastdump.errors import OptionError
from fastdump.selection import parse_tags


def test_parse_tags_accepts_keywords_and_hex():
    assert parse_tags("PatientID, 0020000D,00080060") == {0x00100020, 0x0020000D, 0x00080060}
    assert parse_tags(["Modality", 0x00100010]) == {0x00080060, 0x00100010}
    assert parse_tags(None) is None


def test_parse_tags_takes_tags_as_dcmdump_and_format_tags_write_them():
    assert parse_tags("(0010,0020),Modality, ( 0020 , 000d ),(FFFC,FFFC)") == {
        0x00100020, 0x00080060, 0x0020000D, 0xFFFCFFFC}
    assert parse_tags(["(0008,0060)"]) == {0x00080060}
    for spec in ("0010,0020", "(0010,0020", "(0010,00200)"):  # a bare pair is two items
        with pytest.raises(OptionError, match="or tags as 8 hex digits .00100020. or .0010,0020."):
            parse_tags(spec)


@pytest.mark.parametrize("spec, message", [
    ("PatientsName", "did you mean PatientName"),
    ("patientid", r"did you mean PatientID\?"),  # the case wrong (before: no hint)
    ("00100010,NoSuchKeyword", "unknown DICOM keyword 'NoSuchKeyword'"),
    # a repeating group's keyword names no one tag (before: "unknown", with "Overlays")
    ("OverlayRows", r"repeating group's elements \(60xx0010\).*e\.g\. 60000010"),
    # ... and its mask, as the standard writes it (before: "unknown DICOM keyword")
    ("60xx0010", r"'60xx0010' names a repeating group's elements \(60xx0010\).*60000010"),
    ("PatientID,(60XX,0010)", r"'60XX0010' names a repeating group's elements"),
    (["50xx0005"], r"repeating group's elements \(50xx0005\).*e\.g\. 50000005"),
    ("00020010", "meta group is always written"),
    (",", "at least one tag"),
    # selected nothing, silently: no record holds pixel data
    ("PixelData,Rows", "'PixelData' is pixel data, which fastdump never reads"),
    ("(7FE0,0008)", "is pixel data"),
    ([0x00280010, 0x7FE00009], "is pixel data"),
])
def test_parse_tags_rejects_what_it_cannot_use(spec, message):
    with pytest.raises(OptionError, match=message):
        parse_tags(spec)


def test_cli_unknown_tag_is_one_line_and_exit_2(capsys, archive, tmp_path):
    code = main(["dump", str(archive / "pydicom"), "-o", str(tmp_path / "o"), "--no-progress",
                 "--tags", "PatientID,Modalty"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown DICOM keyword 'Modalty'" in err and "Modality" in err
    assert len(err.strip().splitlines()) == 1

