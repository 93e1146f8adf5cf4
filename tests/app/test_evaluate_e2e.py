"""The Evaluate page in a real browser: ``streamlit run app.py -- --coco GT --images DIR
--predictions DT.json`` opens with those predictions, /evaluate shows pycocotools' AP to 3
decimals, a bar's click opens Browse on its category and a confusion cell's on its images.

Screenshots: tests/artifacts/evaluate*.png (look at them)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.app import test_e2e
from tests.app.test_e2e import CHROMIUM, no_exception, serve, settle, shot
from tests.evaluation.test_cocoeval import made, oracle
from tests.helpers import tiny

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
page = test_e2e.page  # the module's browser page (a fixture)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def predictions(tmp_path_factory) -> dict[str, Path]:
    gt, images = tiny("val2017")
    out = tmp_path_factory.mktemp("predictions")
    return {
        "gt": gt,
        "images": images,
        "bbox": made(gt, out / "bbox.json", "bbox", seed=3),
        "segm": made(gt, out / "segm.json", "segm", seed=3),
    }


@pytest.fixture(scope="module")
def evaluate_url(_cache_dir, predictions, tmp_path_factory):
    """The app started on coco-tiny val2017 with two predictions files on its command line."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_PREDICTIONS")
    }
    args = (
        "--coco", str(predictions["gt"]), "--images", str(predictions["images"]),
        "--predictions", str(predictions["bbox"]), "--predictions", f"masks={predictions['segm']}",
    )  # fmt: skip
    yield from serve(env, tmp_path_factory.mktemp("server") / "evaluate.log", args)


def open_evaluate(page, url: str, ap: str) -> None:
    page.goto(f"{url}/evaluate")
    page.get_by_text(ap, exact=True).first.wait_for(timeout=180_000)
    settle(page, 120)
    no_exception(page)


def click_mark(page, chart_key: str, selector: str) -> None:
    """Click the middle of the last ``selector`` mark of a chart (for bars: the top one),
    scrolled into view (plotly's drag layer takes the click and selects the mark under it)."""
    mark = page.locator(f".st-key-{chart_key} [data-testid='stPlotlyChart'] {selector}").last
    mark.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = mark.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_the_evaluate_page_in_a_browser(evaluate_url, predictions, page):
    e, _ = oracle(predictions["gt"], predictions["bbox"], "bbox")
    ap = f"{e.stats[0]:.3f}"
    open_evaluate(page, evaluate_url, ap)
    keys = parse_qs(urlparse(page.url).query)["preds"][0].split(",")
    assert len(keys) == 2 and all(len(k) == 12 and "/" not in k for k in keys)
    assert page.get_by_test_id("stSidebar").get_by_text("masks").count() == 1
    page.set_viewport_size({"width": 1400, "height": 1000})
    shot(page, "evaluate")
    page.set_viewport_size({"width": 1400, "height": 9000})  # every chart drawn, for a look
    settle(page)
    shot(page, "evaluate-whole")
    page.set_viewport_size({"width": 1400, "height": 1000})

    click_mark(page, "ev_ap", "g.point path")
    page.wait_for_url("**/*cats=*", timeout=60_000)
    page.get_by_text("images match").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)

    open_evaluate(page, evaluate_url, ap)
    click_mark(page, "ev_confusion_chart", "g.trace.scatter path.point")
    page.wait_for_url("**/*ids=*", timeout=60_000)
    page.get_by_text("chosen on the Map or the Evaluate page").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    ids = parse_qs(urlparse(page.url).query)["ids"][0].split(",")
    assert ids and all(i.isdigit() for i in ids)
    shot(page, "evaluate-cell-in-browse")
