"""``download coco`` against a local stand-in of the COCO host (tests/coco/coco_server.py, on
127.0.0.1) that fails, truncates, is slow and answers Range requests, serving coco-tiny's
val2017: every byte arrives, nothing is fetched twice, a kill or Ctrl-C loses nothing finished
and leaves no partial file under a final name, the annotation zip resumes and is CRC-checked,
subsets are consistent, and an unreachable host or a full disk is one line and exit 2."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from explorer.coco.download import (
    DownloadRequest,
    DownloadRun,
    RetryPolicy,
    download_coco,
    open_command,
)
from explorer.errors import DownloadError
from tests.helpers import ROOT, run_cli, tiny

SERVER = Path(__file__).with_name("coco_server.py")
ZIP = "/annotations/annotations_trainval2017.zip"
FAST = RetryPolicy(backoff=0.01, max_wait=0.05)  # the same retries, without the waiting


@contextlib.contextmanager
def coco_host(tmp_path: Path, *faults: str, ann: Path | None = None):
    """The stand-in host serving coco-tiny's val2017 (with ``ann`` as its annotation file when
    given); yields (base URL, its request log)."""
    tiny_ann, images = tiny()
    ann = ann or tiny_ann
    port_file, log = tmp_path / f"port-{time.monotonic_ns()}", tmp_path / "requests.log"
    cmd = [sys.executable, str(SERVER), "--ann", str(ann), "--images", str(images)]
    cmd += ["--port-file", str(port_file), "--log", str(log), *faults]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}", log
    finally:
        server.kill()
        server.wait()


def requests(log: Path, start: int = 0) -> list[str]:
    """The logged requests from line ``start`` on ("N METHOD PATH STATUS BYTES")."""
    return log.read_text().splitlines()[start:] if log.exists() else []


def same_as_original(dest: Path, names: list[str] | None = None) -> list[str]:
    """Images under ``dest/val2017`` (or of ``names``) missing or differing from coco-tiny's."""
    _, images = tiny()
    names = names if names is not None else sorted(os.listdir(images))
    return [
        n
        for n in names
        if not (dest / "val2017" / n).is_file()
        or not filecmp.cmp(images / n, dest / "val2017" / n, shallow=False)
    ]


def partial_final_files(dest: Path) -> list[str]:
    """Files under their final image name whose bytes differ from the original's."""
    folder = dest / "val2017"
    finals = [n for n in os.listdir(folder) if not n.startswith(".")] if folder.is_dir() else []
    return same_as_original(dest, finals)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


def download_cli(url: str, dest: Path, *extra: str) -> list[str]:
    return [
        "download",
        "coco",
        "--split",
        "val2017",
        "--dest",
        str(dest),
        "--base-url",
        url,
        *extra,
    ]


# ----------------------------------------------------------------------------- whole split


def test_a_faulty_host_gives_every_byte_and_a_second_run_fetches_nothing(tmp_path):
    ann, _ = tiny()
    faults = ("--fail-every", "5", "--truncate-every", "7", "--delay", "0.01")
    with coco_host(tmp_path, *faults) as (url, log):
        result = download_coco(DownloadRequest(tmp_path / "d"), DownloadRun(url, policy=FAST))
        first = requests(log)
        assert any(" 500 " in r for r in first) and any("TRUNCATED" in r for r in first)
        assert result.annotations.read_bytes() == ann.read_bytes()
        assert same_as_original(tmp_path / "d") == []
        assert result.fetched == result.images_total == 80
        assert not [p for p in (tmp_path / "d").rglob(".*") if p.name.endswith((".tmp", ".part"))]

        again = download_coco(DownloadRequest(tmp_path / "d"), DownloadRun(url, policy=FAST))
        assert requests(log, len(first)) == []  # not even the annotation zip
        assert again.fetched == 0 and again.bytes_fetched == 0


def test_the_command_prints_the_line_that_opens_the_result(tmp_path):
    with coco_host(tmp_path) as (url, _):
        r = run_cli(*download_cli(url, tmp_path / "d"))
    assert r.returncode == 0, r.stderr[-2000:]
    d = tmp_path / "d"
    assert r.stdout.strip().splitlines()[-1] == (
        f"streamlit run app.py -- --coco {d}/annotations/instances_val2017.json"
        f" --images {d}/val2017"
    )
    _, images = tiny()
    size = sum(p.stat().st_size for p in images.iterdir())
    size += (d / "annotations" / "annotations_trainval2017.zip").stat().st_size
    summary = rf"80 images \(80 fetched now\), {size / 1e6:.1f} MB in \d+\.\d s"
    assert re.fullmatch(summary, r.stderr.strip()), r.stderr  # no bars: stderr is no terminal


def test_progress_bars_count_images_and_megabytes(tmp_path):
    """The CLI's bars (drawn only on a terminal), fed by the library from its workers."""
    import io

    from explorer.cli.progress import DownloadBars

    out = io.StringIO()
    bars = DownloadBars(out)
    with coco_host(tmp_path) as (url, _):
        download_coco(
            DownloadRequest(tmp_path / "d"), DownloadRun(url, policy=FAST, on_progress=bars)
        )
    bars.close()
    text = out.getvalue()
    assert "annotations zip: 100%" in text and "170k/170k" in text
    assert "images: 100%" in text and "80/80" in text and "img/s" in text
    size = sum(p.stat().st_size for p in tiny()[1].iterdir())
    assert f"received: {size / 1e6:.1f}MB" in text and "MB/s" in text


def test_a_kill_midway_leaves_no_partial_file_and_the_rerun_completes(tmp_path):
    dest = tmp_path / "d"
    with coco_host(tmp_path, "--delay", "0.2") as (url, _):
        cmd = [sys.executable, "-m", "explorer", *download_cli(url, dest, "--workers", "2")]
        p = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _wait_for_images(dest, 3)
        p.kill()  # SIGKILL: no cleanup runs
        p.wait()
        kept = [n for n in os.listdir(dest / "val2017") if not n.startswith(".")]
        assert 3 <= len(kept) < 80
        assert partial_final_files(dest) == []
        assert not (dest / "annotations" / "instances_val2017.json").exists()  # written last

        download_coco(DownloadRequest(dest), DownloadRun(url, policy=FAST))
    assert same_as_original(dest) == []
    assert [p.name for p in (dest / "val2017").iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_stops_at_once_keeping_what_finished(tmp_path):
    dest = tmp_path / "d"
    with coco_host(tmp_path, "--delay", "0.2") as (url, _):
        cmd = [sys.executable, "-m", "explorer", *download_cli(url, dest, "--workers", "2")]
        p = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        _wait_for_images(dest, 2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10)
    assert p.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert partial_final_files(dest) == []
    assert [p.name for p in (dest / "val2017").iterdir() if p.name.startswith(".")] == []


def _wait_for_images(dest: Path, n: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        folder = dest / "val2017"
        if folder.is_dir() and sum(not x.startswith(".") for x in os.listdir(folder)) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} images arrived in {timeout} s")


# ----------------------------------------------------------------------------- annotation zip


def _zip_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url + ZIP) as r:
        return r.read()


def test_a_partial_zip_is_resumed_with_a_range_request(tmp_path):
    ann, _ = tiny()
    part = tmp_path / "d" / "annotations" / ".annotations_trainval2017.zip.part"
    part.parent.mkdir(parents=True)
    with coco_host(tmp_path) as (url, log):
        whole = _zip_bytes(url)
        part.write_bytes(whole[: len(whole) // 3])
        n = len(requests(log))
        download_coco(DownloadRequest(tmp_path / "d", images=False), DownloadRun(url, policy=FAST))
        (resumed,) = requests(log, n)
    assert resumed.split()[1:] == ["GET", ZIP, "206", str(len(whole) - len(whole) // 3)]
    assert (tmp_path / "d" / "annotations" / "instances_val2017.json").read_bytes() == (
        ann.read_bytes()
    )
    assert (tmp_path / "d" / "annotations" / "annotations_trainval2017.zip").read_bytes() == whole
    assert not part.exists()


def test_a_zip_failing_its_crc_is_fetched_again(tmp_path):
    """A whole-sized part with a flipped byte (a bad disk, a mirror's hiccup): the host says it
    is whole (416), the CRC check fails, and the zip is fetched again from its start."""
    ann, _ = tiny()
    part = tmp_path / "d" / "annotations" / ".annotations_trainval2017.zip.part"
    part.parent.mkdir(parents=True)
    with coco_host(tmp_path) as (url, log):
        bad = bytearray(_zip_bytes(url))
        bad[len(bad) // 2] ^= 0xFF
        part.write_bytes(bad)
        n = len(requests(log))
        download_coco(DownloadRequest(tmp_path / "d", images=False), DownloadRun(url, policy=FAST))
        statuses = [line.split()[3] for line in requests(log, n)]
    assert statuses == ["416", "200"]
    assert (tmp_path / "d" / "annotations" / "instances_val2017.json").read_bytes() == (
        ann.read_bytes()
    )


def test_a_host_serving_a_corrupt_zip_is_reported_in_one_line(tmp_path):
    with coco_host(tmp_path, "--corrupt-zip") as (url, _):
        line = one_error_line(run_cli(*download_cli(url, tmp_path / "d")))
    assert line.startswith(f"error: {url}{ZIP}: the zip arrived corrupt twice"), line
    assert [p.name for p in (tmp_path / "d" / "annotations").iterdir()] == []


# ----------------------------------------------------------------------------- subsets


def _second_category() -> tuple[str, int]:
    doc = json.loads(tiny()[0].read_text())
    counts = Counter(a["category_id"] for a in doc["annotations"])
    cid = counts.most_common(2)[1][0]
    return next(c["name"] for c in doc["categories"] if c["id"] == cid), cid


def test_a_subset_is_consistent_and_repeatable(tmp_path):
    ann, _ = tiny()
    full = json.loads(ann.read_text())
    name, cid = _second_category()
    with coco_host(tmp_path) as (url, _):
        run = DownloadRun(url, policy=FAST)
        result = download_coco(
            DownloadRequest(tmp_path / "a", categories=(name,), max_images=5), run
        )
        download_coco(DownloadRequest(tmp_path / "b", categories=(name,), max_images=5), run)
    sub = json.loads(result.annotations.read_text())
    ids = {im["id"] for im in sub["images"]}
    assert 1 <= len(ids) <= 5
    assert ids <= {a["image_id"] for a in full["annotations"] if a["category_id"] == cid}
    # every annotation of the kept images, the category list whole: masks stay true
    assert sub["annotations"] == [a for a in full["annotations"] if a["image_id"] in ids]
    assert sub["categories"] == full["categories"]
    names = sorted(im["file_name"] for im in sub["images"])
    assert sorted(os.listdir(tmp_path / "a" / "val2017")) == names
    assert same_as_original(tmp_path / "a", names) == []
    assert (tmp_path / "b" / "annotations" / "instances_val2017.json").read_bytes() == (
        result.annotations.read_bytes()
    )


def test_an_unknown_category_lists_the_valid_ones(tmp_path):
    with coco_host(tmp_path) as (url, _):
        line = one_error_line(
            run_cli(*download_cli(url, tmp_path / "d", "--categories", "cat,unicorn"))
        )
    assert line.startswith("error: --categories: unknown unicorn; valid: person, bicycle, "), line


# ----------------------------------------------------------------------------- failures


def test_an_unreachable_host_is_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    line = one_error_line(run_cli(*download_cli(f"http://127.0.0.1:{port}", tmp_path / "d")))
    assert line.startswith(f"error: http://127.0.0.1:{port}: cannot reach the host ("), line
    assert "refused" in line and time.monotonic() - t < 15


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, tiny_disk):
    """coco-tiny's 12 MB of images on a 3 MB disk."""
    dest = tiny_disk / "d"
    with coco_host(tmp_path) as (url, _):
        line = one_error_line(run_cli(*download_cli(url, dest)))
    assert line.startswith(f"error: {dest / 'val2017'}: the disk is full"), line
    assert partial_final_files(dest) == []
    assert [p.name for p in tiny_disk.rglob(".*") if p.name.endswith(".tmp")] == []


def test_open_command_quotes_paths(tmp_path):
    from explorer.coco.download import DownloadResult

    r = DownloadResult(tmp_path / "my data" / "a.json", None, 0, 0, 0, 0.0)
    assert open_command(r) == f"streamlit run app.py -- --coco '{tmp_path}/my data/a.json'"


# ------------------------------------------------------------------------- hostile hosts, files


def _tiny_with(tmp_path: Path, change) -> Path:
    """coco-tiny's val2017 annotation file after ``change(doc)``, written under ``tmp_path``."""
    doc = json.loads(tiny()[0].read_text())
    change(doc)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc))
    return path


def test_two_images_with_one_file_name_and_url_are_one_file_fetched_once(tmp_path):
    """Two image records naming one file (and one URL) are one file: fetched once, the second
    record counted, never two workers writing one file."""

    def share(doc):
        first, second = doc["images"][:2]
        second["file_name"], second["coco_url"] = first["file_name"], first["coco_url"]

    ann = _tiny_with(tmp_path, share)
    name = json.loads(ann.read_text())["images"][0]["file_name"]
    with coco_host(tmp_path, "--delay", "0.05", ann=ann) as (url, log):
        r = run_cli(*download_cli(url, tmp_path / "d", "--workers", "8"))
        fetched = [line.split()[2] for line in requests(log) if " GET " in line]
    assert r.returncode == 0, r.stderr[-2000:]
    assert fetched.count(f"/val2017/{name}") == 1
    assert "80 images (79 fetched now; 1 shares its file name with another, fetched once)" in (
        r.stderr
    ), r.stderr
    assert same_as_original(tmp_path / "d", [name]) == []
    assert len(os.listdir(tmp_path / "d" / "val2017")) == 79


def test_two_images_with_one_file_name_and_two_urls_are_refused_in_one_line(tmp_path):
    """One folder cannot hold two pictures under one name: which one the annotations of each
    describe would be a guess."""

    def clash(doc):
        doc["images"][1]["file_name"] = doc["images"][0]["file_name"]

    ann = _tiny_with(tmp_path, clash)
    first, second = json.loads(ann.read_text())["images"][:2]
    with coco_host(tmp_path, ann=ann) as (url, _):
        line = one_error_line(run_cli(*download_cli(url, tmp_path / "d")))
    assert line == (
        f"error: instances_val2017.json: images {first['id']} and {second['id']} both name "
        f"{first['file_name']} but come from different URLs: one folder cannot hold both"
    ), line
    assert not (tmp_path / "d" / "val2017").exists()


def test_concurrent_fetches_of_one_file_use_their_own_temporaries(tmp_path):
    """Two downloads into one folder in one process (two app sessions): each writes its own
    temporary. Made deterministic by starting the second fetch inside the first one's progress
    callback, between its first chunk and its rename."""
    from explorer.coco.download.http import Client, fetch_file

    ann, images = tiny()
    name = sorted(os.listdir(images))[0]
    dest = tmp_path / name
    client = Client(FAST, 2)
    nested: list[int] = []

    def on_bytes(_: int) -> None:
        if not nested:
            nested.append(fetch_file(client, url + f"/val2017/{name}", dest, lambda _: None))

    with coco_host(tmp_path) as (url, _):
        fetch_file(client, url + f"/val2017/{name}", dest, on_bytes)
    assert nested and filecmp.cmp(images / name, dest, shallow=False)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_a_host_that_trickles_is_stopped_by_the_per_file_deadline(tmp_path):
    """A byte every 0.5 s is never silent for the 30 s read timeout, yet a file may take at most
    ``deadline_floor + size / min_rate`` seconds: here 0.05 s, so it fails by the second byte
    after the clock starts (the server's gap, not the machine's speed, decides)."""
    policy = RetryPolicy(
        attempts=2, backoff=0.01, max_wait=0.05, deadline_floor=0.05, min_rate=1e12
    )
    with coco_host(tmp_path, "--trickle", "0.5") as (url, _):
        with pytest.raises(DownloadError) as e:
            download_coco(
                DownloadRequest(tmp_path / "d", images=False), DownloadRun(url, policy=policy)
            )
    message = str(e.value)
    assert message.startswith(f"{url}{ZIP}: too slow: "), message
    assert "gave up after 2 tries" in message and "\n" not in message


def test_a_zip_bomb_is_refused_in_one_line_and_not_kept(tmp_path):
    """A valid instances file padded with 30 MB of spaces: a zip of a few tens of kB whose
    member would expand over 100 times. Refused from the zip's directory, before anything is
    decompressed, and dropped (a rerun does not trust it)."""
    bomb = tmp_path / "bomb.json"
    bomb.write_bytes(b'{"images": [], "categories": []' + b" " * 30_000_000 + b"}")
    with coco_host(tmp_path, ann=bomb) as (url, _):
        line = one_error_line(run_cli(*download_cli(url, tmp_path / "d")))
    assert line.startswith(
        f"error: {url}{ZIP}: refused: annotations/instances_val2017.json would expand "
    ), line
    assert "times its compressed size" in line, line
    assert [p.name for p in (tmp_path / "d" / "annotations").iterdir()] == []


def test_zip_limits_refuse_a_member_over_the_size_cap(tmp_path):
    """The absolute cap, checked with a small one on coco-tiny's real zip (the default, 1 GiB,
    is twice COCO's largest instances file)."""
    from explorer.coco.download.annotations import ZipLimits, zip_refusal

    with coco_host(tmp_path) as (url, _):
        path = tmp_path / "a.zip"
        path.write_bytes(_zip_bytes(url))
    assert zip_refusal(path) == ""
    problem = zip_refusal(path, ZipLimits(max_bytes=1_000_000))
    assert problem.startswith("refused: annotations/instances_val2017.json would expand to "), (
        problem
    )
    assert "more than the 1,000,000 bytes allowed" in problem, problem


def test_a_file_name_too_long_for_any_folder_is_one_line(tmp_path):
    def long_name(doc):
        doc["images"][0]["file_name"] = "a" * 296 + ".jpg"

    ann = _tiny_with(tmp_path, long_name)
    image_id = json.loads(ann.read_text())["images"][0]["id"]
    with coco_host(tmp_path, ann=ann) as (url, _):
        line = one_error_line(run_cli(*download_cli(url, tmp_path / "d")))
    assert line == (
        f"error: instances_val2017.json: image {image_id}: a file name of 300 bytes "
        f"({'a' * 24}...): longer than the 255 a folder entry holds"
    ), line


def test_an_instances_file_nested_too_deep_is_one_line(tmp_path):
    nested = tmp_path / "nested.json"
    depth = 100_000
    nested.write_bytes(
        b'{"images": [], "categories": [], "info": ' + b"[" * depth + b"]" * depth + b"}"
    )
    with coco_host(tmp_path, ann=nested) as (url, _):
        line = one_error_line(run_cli(*download_cli(url, tmp_path / "d")))
    assert line == "error: instances_val2017.json: JSON nested too deeply to be COCO", line
