"""--shard I/N: a deterministic slice of the files, resumed only as the same slice.

That N shards merged are one run is tested in test_merge.py.
"""

from __future__ import annotations

import pytest

import fastdump
from fastdump.cli import main

from .conftest import pydicom_file
from .helpers import accounted


@pytest.mark.parametrize("shard", ["0/3", "4/3", "a/3", "3", "1/0"])
def test_bad_shards_are_refused(tmp_path, shard, capsys):
    code = main(["dump", pydicom_file("CT_small.dcm"), "-o", str(tmp_path / "o"), "--shard",
                 shard, "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.startswith("fastdump: error: --shard")
    assert not (tmp_path / "o").exists()


def test_a_shard_resumes_only_as_the_same_shard(archive, tmp_path):
    out = tmp_path / "s2"
    first = fastdump.dump([archive], out, shard=(2, 3), jobs=1, progress=False)
    again = fastdump.dump([archive], out, shard="2/3", jobs=1, progress=False, resume=True)
    assert (again.unchanged, again.ok, again.gone) == (first.files, 0, 0)
    for other in ("1/3", None):
        with pytest.raises(fastdump.OptionError, match="resume it with --shard 2/3"):
            fastdump.dump([archive], out, shard=other, jobs=1, progress=False, resume=True)
    paths = accounted(out)
    assert len(paths) == len(set(paths)) == first.files  # nothing dropped by the refusals


def test_a_fresh_shard_run_says_what_it_did_and_no_more(archive, tmp_path, capsys):
    out = tmp_path / "s1"
    assert main(["dump", str(archive), "-o", str(out), "--shard", "1/3", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped (shard 1/3) in" in err
    assert "holds" not in err  # (before: "... the unchanged files' included", of none)
