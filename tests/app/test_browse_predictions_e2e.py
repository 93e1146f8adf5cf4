"""Browse's predictions layer and the Mistakes page's detector evidence in a real browser, at
1400 x 1000: ``streamlit run app.py -- --coco GT --images DIR --predictions DT.json``, the grid
sorted by errors, an image opened with its detections drawn and its matches listed, then the
Mistakes page's detector cards.

Screenshots: tests/artifacts/browse-predictions*.png, mistakes-detector.png (look at them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app import test_e2e
from tests.app.test_e2e import CHROMIUM, no_exception, serve, settle, shot
from tests.evaluation.test_cocoeval import made
from tests.helpers import tiny

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
page = test_e2e.page  # the module's browser page (a fixture)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no /usr/bin/chromium"),
]
IMAGE = 25603  # a busy coco-tiny image: TPs, FPs and missed objects at the default threshold


@pytest.fixture(scope="module")
def layer_url(_cache_dir, tmp_path_factory):
    """The app on coco-tiny val2017 started with one bbox results file."""
    gt, images = tiny("val2017")
    bbox = made(gt, tmp_path_factory.mktemp("predictions") / "bbox.json", "bbox", seed=3)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_PREDICTIONS")
    }
    args = ("--coco", str(gt), "--images", str(images), "--predictions", str(bbox))
    yield from serve(env, tmp_path_factory.mktemp("server") / "browse.log", args)


def test_browse_draws_the_predictions_and_mistakes_lists_the_detectors_suspects(layer_url, page):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{layer_url}/?sort=errors")
    page.get_by_text("errors (FP + FN) of").first.wait_for(timeout=180_000)
    settle(page, 120)
    no_exception(page)
    assert page.get_by_text("With an FN (missed) of").first.is_visible()  # filters open
    shot(page, "browse-predictions-grid")
    page.set_viewport_size({"width": 800, "height": 1000})
    settle(page)
    shot(page, "browse-predictions-grid-800")
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.goto(f"{layer_url}/?image_id={IMAGE}&score=0.3")
    page.get_by_text("detections drawn").first.wait_for(timeout=180_000)
    settle(page, 120)
    no_exception(page)
    legend = page.get_by_text("object found, and its detection").first
    assert legend.is_visible()
    page.screenshot(path=str(test_e2e.ARTIFACTS / "browse-predictions.png"))
    page.set_viewport_size({"width": 1400, "height": 2400})  # the lists of matches too
    settle(page)
    shot(page, "browse-predictions-whole")
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.goto(f"{layer_url}/mistakes")
    page.get_by_text("Evidence").first.wait_for(timeout=180_000)
    settle(page, 60)
    page.get_by_text("detector: bbox").first.click()
    page.get_by_text("suspects from bbox").first.wait_for(timeout=180_000)
    settle(page, 120)
    no_exception(page)
    page.screenshot(path=str(test_e2e.ARTIFACTS / "mistakes-detector.png"))
