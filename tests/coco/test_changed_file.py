"""An annotation file rewritten under an open index: reads of its segmentation text stop with
"the file changed since it was opened" (one line, exit 2), judged against the file as the build
read it, never against a stat taken after the bytes were read."""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import pytest

from explorer import cli
from explorer.coco import _build, open_index
from explorer.errors import DatasetError
from tests.helpers import tiny


def _rewrite(path) -> None:
    """Another version of the file: every polygon moved, the layout (offsets) unchanged."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b"1", b"2"))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a coarse clock too


def test_a_file_rewritten_right_after_the_build_read_it_stops_export_masks(tmp_path, monkeypatch):
    """The probe: the rewrite landed between the build's read and the guard's stat, so the
    guard took the new file's stamp and the export painted the old categories on the new
    shapes, exit 0. The rewrite is made at that moment by a real writer (a wrapper that reads
    the bytes for the build, then rewrites the file); nothing else is replaced."""
    ann, images = tiny("val2017")
    copy = tmp_path / "instances_val2017.json"
    shutil.copy(ann, copy)
    read = _build.read_file

    def read_then_rewritten(*args):
        data = read(*args)
        _rewrite(copy)
        return data

    monkeypatch.setattr(_build, "read_file", read_then_rewritten)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(
            ["export-masks", "--coco", str(copy), "--out", str(tmp_path / "masks"), "--quiet"]
        )
    assert code == 2
    assert err.getvalue() == f"error: {copy}: the file changed since it was opened; open it again\n"


def test_a_file_rewritten_after_opening_is_never_read_at_the_old_offsets(tmp_path):
    ann, _ = tiny("val2017")
    copy = tmp_path / "instances_val2017.json"
    shutil.copy(ann, copy)
    index = open_index(copy, use_cache=False)
    row = int(index.annotations["seg_length"].argmax())
    assert index.segmentation(row)  # readable while the file is the one opened
    _rewrite(copy)
    with pytest.raises(DatasetError, match="the file changed since it was opened"):
        index.segmentation(row)


def test_the_build_reads_only_the_file_it_was_keyed_by(tmp_path):
    """A file replaced between the stat its cache key is made of and the read: the build
    refuses it (else the cache under the old key would hold the new file's index)."""
    ann, _ = tiny("val2017")
    copy = tmp_path / "a.json"
    shutil.copy(ann, copy)
    stamp = _build.stamp_of(os.stat(copy))
    _rewrite(copy)
    with pytest.raises(DatasetError, match="the file changed since it was opened"):
        _build.read_file(copy, stamp)
    assert len(_build.read_file(copy, _build.stamp_of(os.stat(copy)))) == copy.stat().st_size
