""" "Write the corrected file" writes only a new file, and a folder that cannot take it is one
line (a StorageError), whatever the reason: no permission, a read-only file system, a folder
or a file in the way. The atomic writer under it never replaces a name taken meanwhile, and
its cleanup never hides the error that stopped a write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from explorer import paths
from explorer.coco.corrections import Fix, write_corrected
from explorer.errors import ExplorerError, StorageError
from tests.helpers import ROOT, tiny

NOBODY = 65534


def _val_copy(folder: Path) -> tuple[Path, Path]:
    """coco-tiny's val file and a train file beside it, as in a COCO annotations folder."""
    ann, _ = tiny("val2017")
    val = folder / "instances_val2017.json"
    shutil.copy(ann, val)
    train = folder / "instances_train2017.json"
    shutil.copy(tiny("train2017")[0], train)
    return val, train


def test_another_annotation_file_beside_it_is_never_overwritten(tmp_path):
    val, train = _val_copy(tmp_path)
    before = train.read_bytes()
    fix = [Fix("relabel", 1, 1, category_id=1)]
    with pytest.raises(ExplorerError, match="instances_train2017.json: already exists"):
        write_corrected(val, fix, train)
    assert train.read_bytes() == before
    link = tmp_path / "dangling.json"
    link.symlink_to(tmp_path / "nowhere.json")  # a name taken by a link is taken too
    with pytest.raises(ExplorerError, match="already exists"):
        write_corrected(val, fix, link)
    assert not (tmp_path / "nowhere.json").exists()
    done = write_corrected(val, fix, tmp_path / "new.json")
    assert Path(done["path"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dangling.json",
        "instances_train2017.json",
        "instances_val2017.json",
        "new.json",
    ]  # no temporary left behind


def test_a_name_taken_while_writing_is_not_replaced(tmp_path):
    """Another writer takes the name after any check could have been made: the finished file
    is refused, theirs is kept, and no temporary is left."""
    out = tmp_path / "out.json"
    with pytest.raises(ExplorerError, match="out.json: already exists"):
        with paths.atomic_file(out, new=True) as f:
            f.write(b"ours")
            out.write_bytes(b"theirs")
    assert out.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out.json"]
    with paths.atomic_file(tmp_path / "free.json", new=True) as f:
        f.write(b"ours")
    assert (tmp_path / "free.json").read_bytes() == b"ours"


def test_a_folder_or_a_file_in_the_way_is_one_line(tmp_path):
    val, _ = _val_copy(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="a part of the path is a file"):
        write_corrected(val, [], blocker / "out.json")
    with pytest.raises(StorageError, match="its folder does not exist"):
        write_corrected(val, [], tmp_path / "missing" / "out.json")
    (tmp_path / "a-folder.json").mkdir()
    with pytest.raises(StorageError, match="a-folder.json: cannot be written \\(a folder"):
        paths.atomic_write_bytes(tmp_path / "a-folder.json", b"x")  # replacing, not new
    with pytest.raises(ExplorerError, match="already exists"):
        write_corrected(val, [], tmp_path / "a-folder.json")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def _in_child_as_nobody(work) -> str:
    """``work()`` run in a forked child whose effective user is nobody (root ignores folder
    permissions); the child's outcome, as text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        try:
            os.setegid(NOBODY)
            os.seteuid(NOBODY)
            work()
            result = "written"
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which judges it
            result = f"{type(e).__name__}: {e}"
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        result = f.read().decode()
    os.waitpid(pid, 0)
    return result


def test_a_folder_without_write_permission_is_one_line():
    # not tmp_path: its parents are private to root, and the write must be tried as nobody
    top = Path(tempfile.mkdtemp(prefix="explorer-eacces-"))
    try:
        top.chmod(0o755)
        val, _ = _val_copy(top)
        val.chmod(0o644)
        locked = top / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)

        def work() -> None:
            write_corrected(val, [], locked / "out.json")

        if os.geteuid() == 0:
            outcome = _in_child_as_nobody(work)
        else:
            try:
                work()
                outcome = "written"
            except ExplorerError as e:
                outcome = f"{type(e).__name__}: {e}"
        if outcome == "written":
            pytest.skip("this file system lets a read-only folder be written (permissions off)")
        denied = f"{locked / 'out.json'}: cannot be written (permission denied)"
        assert outcome == f"StorageError: {denied}"
        assert os.listdir(locked) == []
    finally:
        shutil.rmtree(top)


_ON_READ_ONLY = """
import sys
from pathlib import Path
from explorer import paths
from explorer.coco.corrections import write_corrected
from explorer.errors import ExplorerError
folder = Path(sys.argv[1])
for write in (
    lambda: write_corrected(folder / "instances_val2017.json", [], folder / "out.json"),
    lambda: paths.atomic_write_bytes(folder / "instances_val2017.json", b"x"),
):
    try:
        write()
        print("written")
    except ExplorerError as e:
        print(type(e).__name__, e)
"""


def test_a_read_only_file_system_is_one_line_for_every_atomic_write(tmp_path):
    """A read-only bind mount in a private mount namespace (``unshare``): writing there failed,
    and then removing the temporary failed too, raising its own OSError over the first."""
    folder = tmp_path / "ro"
    folder.mkdir()
    _val_copy(folder)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: a read-only mount cannot be made here")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 77; echo mounted; '
    script += 'exec "$2" -c "$3" "$1"'
    r = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(folder), sys.executable, _ON_READ_ONLY],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if not r.stdout.startswith("mounted"):
        pytest.skip(f"no private read-only mount here (user namespaces off?): {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    read_only = f"StorageError {folder}: the folder is on a read-only file system"
    assert r.stdout.splitlines()[1:] == [read_only + " (Read-only file system)"] * 2, r.stdout
