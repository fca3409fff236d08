"""Seeded mutations of real files: no crash, no hang, every file once, every line JSON.

FASTDUMP_FUZZ_FILES sets the corpus size (default 5,000, as run in CI).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from unittest import mock

import pydicom
import pytest
from pydicom import filereader

from fastdump.selection import parse_tags, select

from .conftest import PYDICOM_FILES, regular_files
from .helpers import SIX_TAGS, output_lines, parse_line, run_cli
from .mutations import corpus as mutated_corpus

FILES = int(os.environ.get("FASTDUMP_FUZZ_FILES", "5000"))
SEED = 5000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "corpus"
    sources = [f for f in PYDICOM_FILES if os.path.getsize(f) > 256]
    made = list(mutated_corpus(sources, root, FILES, seed=SEED, head=65536))
    assert len(made) == FILES
    return root


def dump_checked(root, out, *options: str) -> dict[str, dict]:
    """Dump ``root``; check that every file is in exactly one whole JSON line; path -> line."""
    result = run_cli("dump", root, "-o", out, "--no-progress", "--file-timeout", "20",
                     *options, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    seen: dict[str, dict] = {}
    assert (out / "dump.jsonl").exists() and (out / "errors.jsonl").exists()
    for line in output_lines(out):
        record = parse_line(line)  # every line is whole, valid JSON
        assert ("dataset" in record) != ("error" in record)
        assert record["path"] not in seen, "a file was written twice"
        seen[record["path"]] = record
    assert len(seen) == FILES and set(seen) == regular_files(root), "a file was lost"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == summary["ok"] + summary["errors"] == FILES
    print(f"fuzz {' '.join(options) or 'full dump'}: {FILES} files, {summary['ok']} dumped, "
          f"{summary['errors']} errors, {summary['seconds']} s")
    return seen


@pytest.fixture(scope="module")
def full(corpus, tmp_path_factory) -> dict[str, dict]:
    return dump_checked(corpus, tmp_path_factory.mktemp("fuzz") / "full")


def test_fuzzed_corpus_is_accounted_for(full):
    assert sum("dataset" in r for r in full.values()) > FILES // 5


def test_fuzzed_corpus_with_tags(corpus, full, tmp_path):
    spec = SIX_TAGS + ",ReferencedImageSequence,00091001,00431028"
    tags = parse_tags(spec)
    selected = dump_checked(corpus, tmp_path / "tags", "--tags", spec)
    compared = disordered = repeated = 0
    for path, record in selected.items():
        # damage past the last selected tag is not looked at with --tags, so only
        # files both runs dumped are compared
        if "dataset" not in record or "dataset" not in full[path]:
            continue
        expected = select(full[path], tags)["dataset"]
        met, walked = top_level_tags(path)
        if walked and all(a < b for a, b in zip(met, met[1:], strict=False)):
            assert record["dataset"] == expected, path
            compared += 1
            continue
        # reading stops at the first element past the selection: a selected
        # element that comes after it, out of order, is not found
        disordered += 1
        twice = {tag for tag, n in Counter(met).items() if n > 1}
        for key, element in record["dataset"].items():
            assert key in expected, (path, key)
            if int(key, 16) in twice:
                # the full dump keeps an element's last copy; the selection the
                # copy met before reading stopped
                repeated += 1
            else:
                assert element == expected[key], (path, key)
    assert compared > FILES // 5
    print(f"--tags equal to the full dump on {compared} files; {disordered} out of order "
          f"({repeated} elements met twice)")


def top_level_tags(path: str) -> tuple[list[int], bool]:
    """The top-level tags of ``path`` in the order pydicom's reader meets them (its guess of
    the transfer syntax of a file without one included), and whether it walked the file
    to the end (a file it cannot walk is not an ordered file)."""
    walks = pydicom_walks(path)
    return walks[-1] if walks else ([], False)  # the dataset: after the meta group


def pydicom_walks(path: str) -> list[tuple[list[int], bool]]:
    """(tags met, whether the walk ended cleanly) of each top-level element walk pydicom's
    dcmread makes of ``path``; [] if it cannot read the file at all."""
    walks: list[tuple[list[int], bool]] = []
    depth = [0]  # > 0 while a walk reads a sequence, whose items are walks of their own
    original = filereader.data_element_generator

    def recording(*args, **kwargs):
        tags: list[int] = []
        top = depth[0] == 0
        elements = original(*args, **kwargs)
        while True:
            depth[0] += 1
            try:
                element = next(elements)
            except StopIteration:
                if top:
                    walks.append((tags, True))
                return
            except BaseException:
                if top:
                    walks.append((tags, False))
                raise
            finally:
                depth[0] -= 1
            tags.append(element.tag)
            yield element

    try:
        with warnings.catch_warnings(), mock.patch.object(filereader, "data_element_generator",
                                                          recording):
            warnings.simplefilter("ignore")
            pydicom.dcmread(path, force=True, stop_before_pixels=True, defer_size=64)
    except Exception:  # noqa: BLE001 - unreadable: not an ordered file
        return []
    return walks
