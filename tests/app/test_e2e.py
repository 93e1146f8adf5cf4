"""Real-browser end-to-end: `streamlit run app.py` on a free loopback port, headless Chromium.

Screenshots go to tests/artifacts/ (git-ignored). Skipped without /usr/bin/chromium or playwright.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, tiny

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no /usr/bin/chromium"),
]
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(_cache_dir, tmp_path_factory):
    """The app serving coco-tiny val2017 (or the sample when coco-tiny is absent)."""
    env = dict(os.environ)
    ann = ROOT.parent / "shared" / "coco-tiny" / "annotations" / "instances_val2017.json"
    if ann.is_file():
        env["EXPLORER_COCO"], env["EXPLORER_IMAGES"] = str(ann), str(ann.parent.parent / "val2017")
    yield from serve(env, tmp_path_factory.mktemp("server") / "server.log")


def serve(env: dict, log_path: Path, args: tuple[str, ...] = ()):
    """``streamlit run app.py [-- ARGS]`` on a free loopback port; yields its URL, stops it
    after."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--server.fileWatcherType=none",
            "--browser.gatherUsageStats=false",
            *(("--", *args) if args else ()),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("streamlit did not come up")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def page():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def settle(page, timeout: float = 60) -> None:
    """Wait until the app is connected and no script is running."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout * 1000)
    page.wait_for_timeout(800)
    deadline = time.time() + timeout
    while page.query_selector("[data-testid='stStatusWidget']") and time.time() < deadline:
        page.wait_for_timeout(300)
    page.wait_for_timeout(500)


def no_exception(page) -> None:
    shown = page.query_selector_all("[data-testid='stException']")
    assert not shown, shown[0].inner_text()[:300]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_direct_link_to_a_page_and_bar_click(app_url, page):
    """First in the module: the server has not run app.py yet (Streamlit's legacy pages/ mode)."""
    page.goto(f"{app_url}/distributions")
    page.wait_for_selector("[data-testid='stPlotlyChart'] g.point path", timeout=60_000)
    settle(page)
    bar = (
        page.locator("[data-testid='stPlotlyChart']")
        .first.locator("g.point path")
        .first.bounding_box()
    )
    page.mouse.click(
        bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] - 3
    )  # plotly's drag layer takes it
    page.wait_for_url("**/*cats=*", timeout=30_000)
    page.get_by_text("images match").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    assert page.get_by_text("Categories").count() >= 1
    shot(page, "bar-click")


def test_every_page_opens_without_exception(app_url, page):
    page.goto(app_url)
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    no_exception(page)
    shot(page, "browse")
    page.get_by_test_id("stSidebarNav").get_by_text("Distributions").click()
    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=60_000)
    settle(page)
    no_exception(page)
    assert page.get_by_test_id("stPlotlyChart").count() >= 8
    shot(page, "distributions")
    page.get_by_test_id("stSidebarNav").get_by_text("Map", exact=True).click()
    page.get_by_role("heading", name="Map").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    shot(page, "map")


def test_deep_link_and_interaction_keep_the_sidebar(app_url, page):
    ann, _ = tiny("val2017")
    from explorer.coco import open_index

    image_id = int(open_index(ann).images["id"][0])
    page.goto(f"{app_url}/?image_id={image_id}")
    settle(page)
    no_exception(page)
    page.get_by_text(f"Image {image_id} ·").wait_for(timeout=60_000)
    settle(page)
    shot(page, "detail")
    page.get_by_text("Boxes", exact=True).click()  # a rerun of the detail fragment
    settle(page)
    page.get_by_role("button", name="← Grid").click()  # a full rerun
    page.get_by_text("images match").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    assert page.get_by_test_id("stSidebar").get_by_text("Dataset").count() == 1
    assert "image_id" not in page.url


NAV_RECORDER = """
window.__nav = []; window.__t0 = performance.now(); window.__title = null;
new MutationObserver(() => {
  document.querySelectorAll("[data-testid='stSidebarNav'] a").forEach(a => {
    const t = a.innerText.trim().split("\\n").pop().trim();
    if (!window.__nav.includes(t)) window.__nav.push(t);
  });
  if (window.__title === null && document.querySelector("[data-testid='stMain'] :is(h1, h2)"))
    window.__title = (performance.now() - window.__t0) / 1000;
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture()
def fresh_server(tmp_path):
    """A server that has never run app.py, on an empty cache (the sample not generated yet)."""
    env = {k: v for k, v in os.environ.items() if k not in ("EXPLORER_COCO", "EXPLORER_IMAGES")}
    env["EXPLORER_CACHE"] = str(tmp_path / "cache")
    yield from serve(env, tmp_path / "server.log")


def test_first_visit_shows_titles_quickly_and_never_file_names(fresh_server, page):
    """Issue 12: a fresh server's first run went through Streamlit's legacy pages/ mode (file
    names in the sidebar) and showed nothing while the sample was generated."""
    fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    fresh.add_init_script(NAV_RECORDER)
    fresh.goto(fresh_server)
    fresh.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    settle(fresh)
    fresh.get_by_text("images match").wait_for(timeout=60_000)
    labels = fresh.evaluate("window.__nav")
    assert labels and not [n for n in labels if n.islower()], labels
    assert "Browse" in labels
    assert fresh.evaluate("window.__title") < 5.0
    side = fresh.get_by_test_id("stSidebar")
    split = side.get_by_test_id("stSelectbox").first.evaluate(
        "e => e.textContent + [...e.querySelectorAll('input')].map(i => i.value).join()"
    )
    assert "sample val2017" in split and "train2017" not in split
    side.get_by_test_id("stRadioOption").filter(has_text="Files").first.click()
    side.get_by_text("Annotation file").wait_for(timeout=20_000)  # on the very first page
    shot(fresh, "first-visit-files")
    fresh.close()


def test_switching_datasets_keeps_the_picker_and_drops_the_image(app_url, page):
    ann, images = tiny("val2017")
    from explorer.coco import open_index

    image_id = int(open_index(ann).images["id"][2])
    page.goto(f"{app_url}/?image_id={image_id}")
    settle(page)
    page.get_by_text(f"Image {image_id} ·").wait_for(timeout=60_000)
    side = page.get_by_test_id("stSidebar")
    page.get_by_text("Masks", exact=True).click()  # any click: a rerun
    settle(page)
    checked = side.locator("[data-testid='stRadioOption']:has(input:checked)").inner_text()
    assert "Files" in checked  # the dataset given at start-up, not "Sample"
    assert "ds=" in page.url
    side.get_by_test_id("stRadioOption").filter(has_text="Sample").first.click()
    settle(page)
    side.get_by_test_id("stBaseButton-secondary").filter(has_text="Open").click()
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    no_exception(page)
    assert "image_id" not in page.url
    assert not page.get_by_text("No image with id").count()
    assert "sample val2017" in side.inner_text()


def test_fast_slider_key_presses_all_count(app_url, page):
    """Each press reruns the page and rewrites the URL; a rerun that still carries the previous
    query string must not pull the slider back."""
    page.goto(app_url)
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    thumb = page.get_by_test_id("stSlider").first.get_by_role("slider").first
    # 12 presses, or as many as the data's largest annotation count allows (6 on the sample)
    ticks = page.get_by_test_id("stSlider").first.get_by_test_id("stSliderTickBar").inner_text()
    want = min(12, int(ticks.split()[-1]))
    thumb.focus()
    for _ in range(want):
        thumb.press("ArrowRight")
        page.wait_for_timeout(40)
    page.wait_for_timeout(1500)
    settle(page)
    no_exception(page)
    values = page.get_by_test_id("stSlider").first.get_by_test_id("stSliderThumbValue")
    assert values.first.inner_text() == str(want)
    assert f"inst={want}-" in page.url


@pytest.fixture(scope="module")
def sample_url(_cache_dir, quick_runs, tmp_path_factory):
    """The app on the embedded sample, with the quick-trained runs in the runs folder of a work
    folder (and a cache) of its own (other tests' pickers and runs tables never see them)."""
    import shutil

    cache, work = tmp_path_factory.mktemp("e2e-cache"), tmp_path_factory.mktemp("e2e-work")
    for name, run in quick_runs.items():
        shutil.copytree(run, work / "runs" / f"e2e-{name}")
    env = {k: v for k, v in os.environ.items() if k not in ("EXPLORER_COCO", "EXPLORER_IMAGES")}
    env["EXPLORER_CACHE"], env["EXPLORER_WORK"] = str(cache), str(work)
    yield from serve(env, tmp_path_factory.mktemp("server") / "sample.log")


def test_mistakes_and_map_with_trained_models(sample_url, page):
    """Issue 15 in a real browser: the Mistakes page ranks suspects with the trained models and
    a decision sticks; the Map draws every object of the sample."""
    page.goto(sample_url + "/mistakes")
    page.get_by_role("heading", name="Mistakes").wait_for(timeout=60_000)
    settle(page)
    page.get_by_role("button", name="Find mistakes in the current filter").click()
    page.get_by_text("suspects match").wait_for(timeout=180_000)
    settle(page)
    no_exception(page)
    assert page.get_by_text("366 objects, 366 of a category a model can name").count() == 1
    page.get_by_role("button", name="Confirm").first.click()
    settle(page)
    page.get_by_role("radio", name="confirmed").check(force=True)
    settle(page)
    assert page.get_by_text("1 suspect matches").count() == 1
    assert page.get_by_text("1 confirmed fixes").count() == 1
    no_exception(page)
    shot(page, "mistakes")
    page.goto(sample_url + "/map")
    page.get_by_role("heading", name="Map").wait_for(timeout=60_000)
    settle(page)
    page.get_by_role("radio", name="pca").check(force=True)
    settle(page)
    page.get_by_role("button", name="Draw the map").click()
    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=180_000)
    settle(page)
    no_exception(page)
    shot(page, "map-trained")
