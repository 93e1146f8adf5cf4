"""The app's "Download COCO…" form under AppTest, against the local stand-in host: a subset
arrives with live progress and the form hands back its paths; an unreachable host is one line."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.coco.test_download import coco_host, same_as_original

SCRIPT = str(Path(__file__).with_name("download_app.py"))


def _submit(monkeypatch, url: str, dest: Path, categories: str, max_images: int) -> AppTest:
    monkeypatch.setenv("DL_BASE_URL", url)
    monkeypatch.setenv("DL_DEST", str(dest))
    at = AppTest.from_file(SCRIPT, default_timeout=30).run()
    at.text_input(key="dl_categories").input(categories)
    at.number_input(key="dl_max").set_value(max_images)
    at.button[0].click().run()  # the form's submit button
    return at


def _until(at: AppTest, done, timeout: float = 60) -> AppTest:
    """Rerun (as the polling fragment would) until ``done(at)``."""
    end = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < end, [e.value for e in at.markdown]
        time.sleep(0.2)
        at.run()
    return at


def test_the_form_downloads_a_subset_with_progress_and_hands_back_its_paths(tmp_path, monkeypatch):
    dest, gate = tmp_path / "coco", tmp_path / "gate"
    with coco_host(tmp_path, "--gate", str(gate)) as (url, _):
        at = _submit(monkeypatch, url, dest, "dog", 4)
        # the host holds every image after the first until the gate opens: progress must show
        _until(at, lambda at: any("images" in (p.proto.text or "") for p in at.get("progress")))
        gate.touch()
        _until(at, lambda at: any(m.value.startswith("open: ") for m in at.markdown))
    assert not at.exception
    ann = dest / "annotations" / "instances_val2017.json"
    assert at.markdown[-1].value == f"open: {ann} | {dest / 'val2017'}"
    names = [im["file_name"] for im in json.loads(ann.read_text())["images"]]
    assert 1 <= len(names) <= 4 and same_as_original(dest, names) == []
    at.button(key="dl_again").click().run()  # back to the form
    assert at.text_input(key="dl_dest").value == str(dest)


def test_offline_is_one_line(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    at = _submit(monkeypatch, f"http://127.0.0.1:{port}", tmp_path / "c", "", 0)
    _until(at, lambda at: len(at.error) > 0)
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith(f"Offline? http://127.0.0.1:{port}: cannot reach the host")
    assert "\n" not in error.value


def test_the_sidebar_picker_downloads_then_opens_the_result(tmp_path, monkeypatch):
    dest = tmp_path / "coco"
    with coco_host(tmp_path) as (url, _):
        monkeypatch.setenv("EXPLORER_COCO_URL", url)
        at = AppTest.from_file(str(Path(__file__).with_name("picker_app.py")), default_timeout=90)
        at.run()
        at.sidebar.radio(key="ds_kind").set_value("Download").run()
        at.text_input(key="dl_categories").input("dog")
        at.number_input(key="dl_max").set_value(3)
        at.text_input(key="dl_dest").input(str(dest))
        at.sidebar.button[0].click().run()
        _until(
            at,
            lambda at: any(
                m.value.startswith("current: ") and "sample" not in m.value for m in at.markdown
            ),
        )
    assert not at.exception
    n = len(json.loads((dest / "annotations" / "instances_val2017.json").read_text())["images"])
    assert f"({n} images)" in at.markdown[-1].value and 1 <= n <= 3


def test_a_restricted_server_offers_no_download(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_ROOTS", str(tmp_path))
    at = AppTest.from_file(str(Path(__file__).with_name("picker_app.py")), default_timeout=90)
    at.run()
    at.sidebar.radio(key="ds_kind").set_value("Download").run()
    assert any("Downloading is off" in i.value for i in at.sidebar.info)
    assert not at.text_input  # no form at all
