"""The compiled hot path (fastread, fastjson by Cython) and FASTDUMP_PURE=1.

The whole suite runs twice (README's test command): as installed, compiled
where a C compiler exists, and with FASTDUMP_PURE=1. These tests check that
each run really tests what it says, and that both give the same bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import orjson
import pytest

import fastdump
from fastdump import fastjson, fastread, hotpath

from .helpers import run_cli

PURE = hotpath.pure_requested()


def can_compile() -> bool:
    """A C compiler and Python's headers: what `pip install -e .` needs to compile."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    return shutil.which(compiler) is not None and os.path.exists(header)


def env_for(pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != hotpath.PURE_ENV}
    return {**env, hotpath.PURE_ENV: "1"} if pure else env


def test_the_hot_path_loaded_is_the_one_asked_for():
    modules = (fastread.COMPILED, fastjson.COMPILED, fastjson.HOT_PATH, hotpath.hot_path())
    if PURE:
        assert modules == (False, False, "pure", "pure")
        assert fastread.__file__.endswith(".py") and fastjson.__file__.endswith(".py")
    elif can_compile():
        assert modules == (True, True, "compiled", "compiled"), (
            "a C compiler is here but the compiled hot path is not what runs: run "
            "`pip install -v -e .` and read why it fell back")
    else:
        pytest.skip("no C compiler: only the pure-Python hot path can be tested")


def test_a_new_process_inherits_fastdump_pure():
    # worker processes are new interpreters with this one's environment: as this one
    code = ("import fastdump.worker, fastdump.fastread as r, fastdump.fastjson as j; "
            "print(r.COMPILED, j.COMPILED)")
    out = subprocess.run([sys.executable, "-c", code], env=env_for(True), capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    out = subprocess.run([sys.executable, "-c", code], env=env_for(False), capture_output=True,
                         text=True, check=True).stdout.split()
    compiled = str(bool(hotpath.compiled_files()))
    assert out == [compiled, compiled]


def test_version_says_which_hot_path():
    result = run_cli("--version")
    assert result.returncode == 0
    expected = "compiled hot path" if hotpath.hot_path() == "compiled" else "pure-Python hot path"
    assert result.stdout.strip() == f"fastdump {fastdump.__version__} ({expected})"


@pytest.mark.parametrize("options", [
    [],
    ["--bulk-threshold", "16"],
    ["--tags", "PatientName,Modality,Rows,00091001,PixelRepresentation,ReferencedImageSequence"],
], ids=["full", "bulk16", "tags"])
def test_compiled_and_pure_give_the_same_bytes(archive, tmp_path, options):
    if not hotpath.compiled_files():
        pytest.skip("the compiled hot path is not installed (no C compiler)")
    outputs = {}
    for mode in ("compiled", "pure"):
        out = tmp_path / mode
        result = run_cli("dump", archive, "-o", out, "--jobs", "1", "--no-progress", *options,
                         env=env_for(mode == "pure"))
        assert result.returncode == 0, result.stderr
        assert orjson.loads((out / "summary.json").read_bytes())["hot_path"] == mode
        # (the records' order is the order batches finish in: not what is compared)
        outputs[mode] = {name: sorted((out / name).read_bytes().splitlines())
                         for name in ("dump.jsonl", "errors.jsonl")}
    assert len(outputs["compiled"]["dump.jsonl"]) > 150  # pydicom's files, dumped
    for name, lines in outputs["compiled"].items():
        different = sorted(set(lines) ^ set(outputs["pure"][name]))
        assert lines == outputs["pure"][name], (name, different[:2])


def test_a_stale_build_is_found(tmp_path):
    for name in hotpath.SOURCES:
        shutil.copy(os.path.join(hotpath.PACKAGE_DIR, name), tmp_path / name)
    assert hotpath.stale_sources(str(tmp_path)) == []  # nothing compiled there
    (tmp_path / "fastread.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert hotpath.stale_sources(str(tmp_path)) == list(hotpath.SOURCES)  # no record
    (tmp_path / hotpath.SOURCES_RECORD).write_bytes(
        orjson.dumps(hotpath.source_hashes(str(tmp_path))))
    assert hotpath.stale_sources(str(tmp_path)) == []
    with open(tmp_path / "fastjson.pxd", "a") as f:
        f.write("\n# edited\n")
    assert hotpath.stale_sources(str(tmp_path)) == ["fastjson.pxd"]


def test_the_installed_build_is_not_stale():
    # (conftest stops the run before any test on a stale build; this says why here too)
    stale = hotpath.stale_sources()
    assert not stale, f"compiled hot path older than {stale}: run pip install -e . again"
