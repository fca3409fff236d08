"""fastdump.charset against pydicom.charset, its oracle: the tables, the names, the
decoding of text with ISO 2022 escapes, and the re-encoding of person names, on every
corpus file's text and on values made to break them."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import warnings

import pydicom.charset
import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from fastdump import charset, dicom

from .conftest import PYDICOM_FILES

CHARSET_FILES = sorted(f for f in get_charset_files() if f.endswith(".dcm"))
TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "UC", "PN"}


def test_the_tables_are_pydicoms():
    assert charset.PYTHON_ENCODING == pydicom.charset.python_encoding
    assert charset.STAND_ALONE_ENCODINGS == pydicom.charset.STAND_ALONE_ENCODINGS
    assert charset.CODES_TO_ENCODINGS == pydicom.charset.CODES_TO_ENCODINGS
    assert charset.HANDLED_ENCODINGS == pydicom.charset.handled_encodings
    assert charset.DEFAULT_ENCODING == pydicom.charset.default_encoding
    for encoding, escape in charset._ESCAPE_OF.items():
        assert pydicom.charset.ENCODINGS_TO_CODES[encoding] == escape


def pydicom_says(call, *args):
    """("ok", result) where pydicom neither warns nor fails; ("no", message) where it does."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call(*args)
        except Exception as exc:  # noqa: BLE001 - a failure is an answer
            return "no", repr(exc)
    return ("no", str(caught[0].message)) if caught else ("ok", result)


def ours(call, *args):
    try:
        return "ok", call(*args)
    except charset.NotAsPydicom as exc:
        return "no", str(exc)


def same_outcome(theirs, mine, case) -> None:
    assert theirs[0] == mine[0], (case, theirs, mine)
    if theirs[0] == "ok":
        assert theirs[1] == mine[1], case


NAMES = sorted(charset.PYTHON_ENCODING) + ["ISO_IR 999", "ISO-IR 100", "latin_1", "ISO 2022IR 87"]


def test_names_give_pydicoms_codecs_or_are_left_to_it():
    cases = [[name] for name in NAMES] + [list(pair) for pair in itertools.product(NAMES, NAMES)]
    cases += [["", "ISO 2022 IR 87", "ISO 2022 IR 159"], []]
    answered = 0
    for names in cases:
        theirs = pydicom_says(pydicom.charset.convert_encodings,
                              names[0] if len(names) == 1 else names)
        mine = ours(charset.python_encodings, names)
        # a name pydicom maps without a word is mapped; nowhere else do they differ
        if mine[0] == "ok":
            same_outcome(theirs, mine, names)
            answered += 1
        else:
            assert theirs[0] == "no" or any(n not in charset.PYTHON_ENCODING for n in names), names
    assert answered > 900


SPELLINGS = ["ISO-IR 100", "ISO IR 192", "ISO-IR 999", "ISO 2022-IR 87", "ISO-2022-IR 13",
             "ISO_IR100", "ISO_IR 999", "latin_1", "UTF-8", "utf8", "Latin1", "FOO", ""]


def test_unknown_names_read_as_pydicom_reads_them_and_say_how():
    # pydicom corrects some misspellings, reads a Python codec's name with that codec and
    # anything else as the default repertoire, warning each time: fastdump reads the first
    # and the last the same, leaves codec names to pydicom, and says which it was
    cases = [[name] for name in SPELLINGS + NAMES]
    cases += [list(pair) for pair in itertools.product(SPELLINGS, SPELLINGS + NAMES)]
    read = left = 0
    for names in cases:
        theirs = pydicom_says_all(pydicom.charset.convert_encodings, names)
        try:
            codecs, unknown = charset.read_as(names)
        except charset.NotAsPydicom:
            assert any(charset._is_codec(n) for n in names if n not in charset.PYTHON_ENCODING
                       ) or len(names) > 1, names
            left += 1
            continue
        assert codecs == theirs[0], names
        assert unknown == [n for n in names if n not in charset.PYTHON_ENCODING]
        for name in unknown:  # pydicom's own warning of each says what the record says
            said = next(w for w in theirs[1] if repr(name) in w.replace('"', "'"))
            if "assuming" in said:
                assert "the common misspelling corrected" in charset.unknown_name(name)
            else:
                assert "ISO-IR 6 / latin-1" in charset.unknown_name(name)
        read += 1
    assert read > 150 and left > 20, (read, left)
    assert "Python's codec 'UTF-8'" in charset.unknown_name("UTF-8")
    assert charset.unknown_name("ISO-IR 100").endswith("read it as 'ISO_IR 100', the common "
                                                       "misspelling corrected")


def pydicom_says_all(call, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(*args)
    return result, [str(w.message) for w in caught]


def corpus_encodings() -> list[list[str]]:
    found = {("iso8859",)}
    for path in CHARSET_FILES + PYDICOM_FILES:
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
            value = ds.get("SpecificCharacterSet")
            if value is not None:
                names = [value] if isinstance(value, str) else list(value)
                found.add(tuple(pydicom.charset.convert_encodings(names)))
        except Exception:  # noqa: BLE001, S112 - not every corpus file reads
            continue
    extra = [("iso8859", "iso2022_jp", "iso2022_jp_2"), ("shift_jis", "iso2022_jp"),
             ("iso8859", "euc_kr"), ("latin_1", "iso8859_2", "iso_ir_126"),
             ("iso8859", "iso_ir_58"), ("iso2022_jp",), ("shift_jis",), ("UTF8",)]
    return sorted(list(e) for e in found | set(extra))


def corpus_text() -> list[bytes]:
    """Every text value of the charset files, raw, at any depth."""
    values: list[bytes] = []

    def collect(ds: Dataset) -> None:
        for tag in list(ds.keys()):
            raw = ds.get_item(tag).value  # before ds[tag] decodes it
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    collect(item)
            elif elem.VR in TEXT_VRS and isinstance(raw, bytes):
                values.append(raw)

    for path in CHARSET_FILES:
        collect(dcmread(path, stop_before_pixels=True))
    return values


def made_text(rng: random.Random) -> bytes:
    """Escapes (known, unknown, cut short), text bytes of any set, delimiters."""
    pieces = list(charset.CODES_TO_ENCODINGS) + [b"\x1b", b"\x1b$", b"\x1b(Z", b"\x1b$)Q"]
    words = [b"Yamada", b"\xbb\xb3\xc5\xc4", b"\xd4\xcf\xc0\xde", b"\x3b\x33\x45\x44",
             b"\xb1\xe8\xc8\xf1", b"\xe4\xf6\xfc", b"\xc3\xa9", b"^", b"=", b"\\"]
    out = b""
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        if choice < 0.4:
            out += rng.choice(pieces)
        elif choice < 0.8:
            out += rng.choice(words)
        elif choice < 0.9:
            out += bytes([rng.choice(sorted(dicom.TEXT_VR_DELIMS))])
        else:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return out


def test_escaped_text_decodes_as_pydicom_decodes_it():
    rng = random.Random(2022)
    values = [v for v in corpus_text() if b"\x1b" in v]
    assert len(values) >= 15
    values += [made_text(rng) for _ in range(3000)]
    decoded = left = 0
    for encodings in corpus_encodings():
        for value in values:
            theirs = pydicom_says(pydicom.charset.decode_bytes, value, encodings,
                                  dicom.TEXT_VR_DELIMS)
            mine = ours(charset.decode_escaped, value, encodings, dicom.TEXT_VR_DELIMS)
            same_outcome(theirs, mine, (value, encodings))
            decoded += mine[0] == "ok"
            left += mine[0] == "no"
    assert decoded > 5000 and left > 5000  # both outcomes met, many times


NAME_PARTS = ["Yamada", "Tarou", "山田", "太郎", "やまだ", "ﾔﾏﾀﾞ", "ｱ", "김희중", "Hong",
              "Ελληνικά", "Иванов", "Müller", "é", "😀", "", "^", "=", "A" * 65, "ヤマダ"]


def made_names(rng: random.Random) -> list[str]:
    names = ["", "=", "^", "A=B=C=D", "山田^太郎=やまだ^たろう", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎", "=山田",
             "Yamada^Tarou=山田^太郎=やまだ^たろう", "A==B", "Müller^é", "山"]
    for _ in range(1500):
        names.append("".join(rng.choice(NAME_PARTS) for _ in range(rng.randint(1, 5))))
    return names


def corpus_names() -> list[str]:
    names = []
    for path in CHARSET_FILES:
        ds = dcmread(path, stop_before_pixels=True)
        for elem in ds.iterall():
            if elem.VR == "PN" and elem.value is not None:
                values = elem.value if elem.VM > 1 else [elem.value]
                names += [str(value) for value in values]
    return names


def test_person_names_re_encode_as_pydicom_re_encodes_them():
    names = corpus_names() + made_names(random.Random(87))
    assert len(corpus_names()) > 20
    outcomes = {"ok": 0, "no": 0}
    for encodings in corpus_encodings():
        for name in names:
            theirs = pydicom_says(lambda n, e: PersonName(n, e).encode(), name, encodings)
            mine = ours(charset.check_person_name, name, encodings)
            assert theirs[0] == mine[0], (name, encodings, theirs, mine)
            outcomes[mine[0]] += 1
    assert outcomes["ok"] > 5_000 and outcomes["no"] > 5_000, outcomes


def test_files_in_any_character_set_are_read_without_pydicom():
    # Every charset file, J2K_pixelrep_mismatch.dcm (ISO 2022 IR 13 and 87) among
    # pydicom's test files: the fast path reads them all, pydicom never imported.
    paths = CHARSET_FILES + [p for p in PYDICOM_FILES if p.endswith("J2K_pixelrep_mismatch.dcm")]
    code = ("import os, sys\n"
            "from fastdump import fastjson\n"
            "from fastdump.types import ReadSettings\n"
            f"for path in {paths!r}:\n"
            "    fastjson.fast_record(path, os.path.getsize(path), 0.0, ReadSettings())\n"
            "assert 'pydicom' not in sys.modules, [m for m in sys.modules if 'pydicom' in m]\n"
            f"print({len(paths)})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(paths)}\n"


@pytest.mark.parametrize(("encodings", "outcome"), [
    (["iso2022_jp"], "no"), (["iso8859", "iso2022_jp"], "ok")])
def test_an_empty_name_group_fails_as_in_pydicom(encodings, outcome):
    # pydicom's JIS X 0208 encoder looks at a first character an empty group has not;
    # with another set first, that one encodes it
    theirs = pydicom_says(lambda: PersonName("=Yamada", encodings).encode())
    assert theirs[0] == ours(charset.check_person_name, "=Yamada", encodings)[0] == outcome
