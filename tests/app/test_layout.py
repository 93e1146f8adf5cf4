"""Issue 22, walk 10 and 12: every page at 800, 1100 and 1400 px in a real browser.

One server (the embedded sample, two tiny trained runs in a cache of its own), one pass over the
pages per width. Screenshots go to tests/artifacts/layout-<width>-<page>.png (look at them); what
can be asserted is: no horizontal overflow, the sidebar collapsed at 800 px (open above), the
Device select showing its whole value, the runs table's note readable in full, whole metric chips,
and the Map's "more like this" legend clear of the colour bar.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app.test_e2e import CHROMIUM, no_exception, serve, settle, shot

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no /usr/bin/chromium"),
]

WIDTHS = (800, 1100, 1400)
PAGES = {  # URL path -> title
    "": "Browse",
    "distributions": "Distributions",
    "classify": "Classify",
    "segment": "Segment",
    "compare": "Compare",
    "mistakes": "Mistakes",
    "evaluate": "Evaluate",
    "map": "Map",
    "train": "Train",
    "anatomy": "Anatomy",
}
BUDGET_NOTE = "within the 1 s time budget; expect lower accuracy"  # the plan's note

# whether an element's text is cut: wider than the room its box leaves it (an input's value is
# measured with its font; scrollWidth does not see it)
CUT = """e => {
  const s = getComputedStyle(e);
  const room = e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
  if (e.tagName !== "INPUT") return e.scrollWidth > e.clientWidth + 1;
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = s.font;
  return ctx.measureText(e.value).width > room + 0.5;
}"""


@pytest.fixture(scope="module")
def layout_url(_cache_dir, sample_root, tmp_path_factory):
    """The app on the sample, with a 1-epoch classifier (stopped by a 1 s time budget: its
    note says so) and a 1-epoch segmenter, in a cache of their own."""
    from explorer.training import TrainConfig, train

    cache = tmp_path_factory.mktemp("layout-cache")
    ann = sample_root / "annotations"
    common = {
        "coco": str(ann / "instances_val2017.json"),
        "images": str(sample_root / "val2017"),
        "device": "cpu",
        "workers": 0,
    }
    runs = cache / "work" / "runs"  # the server's own work folder: its runs are no one else's
    # an epoch takes far longer than 1 s: the budget stops the run after its first of two
    train(TrainConfig(task="classify", model="alexnet-classic", epochs=2, batch_size=32,
                      time_budget=1, out=str(runs / "layout-cls"), **common))  # fmt: skip
    train(TrainConfig(task="segment", model="smp-deeplabv3", encoder="resnet18", image_size=64,
                      epochs=1, batch_size=8, out=str(runs / "layout-seg"), **common))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("EXPLORER_COCO", "EXPLORER_IMAGES")}
    env["EXPLORER_CACHE"], env["EXPLORER_WORK"] = str(cache), str(cache / "work")
    yield from serve(env, tmp_path_factory.mktemp("server") / "layout.log")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def overflow(page) -> int:
    """Pixels the document is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def sidebar_open(page) -> bool:
    return page.get_by_test_id("stSidebar").evaluate("e => e.getBoundingClientRect().right > 0")


def device_selects(page) -> list[tuple[str, bool]]:
    """(shown value, cut) of each Device select on the page."""
    boxes = page.locator("[data-testid='stSelectbox'] input[aria-label='Device']")
    return [(b.input_value(), b.evaluate(CUT)) for b in boxes.all()]


def cut_chips(page) -> list[str]:
    """The multiselect chips whose label is cut."""
    chips = page.locator("[data-testid='stMultiSelectTagsContainer'] [data-tag] > span[title]")
    return [c.get_attribute("title") or "" for c in chips.all() if c.evaluate(CUT)]


def choose_every_metric(page) -> None:
    """Add every curve metric to the Metrics multiselect (chips side by side)."""
    box = page.get_by_test_id("stMultiSelect").filter(has_text="Metrics")
    for _ in range(8):
        box.locator("input").click()
        options = page.get_by_role("option")
        if not options.count():
            break
        options.first.click()
        settle(page)
    page.keyboard.press("Escape")
    settle(page)


def legend_over_colour_bar(page, annotation_id: int) -> float:
    """Draw the map (PCA: quick), colour it by size, ring an object's neighbours; the area (px²)
    where the legend and the colour bar overlap."""
    page.get_by_role("radio", name="pca").check(force=True)
    settle(page)
    page.get_by_role("button", name="Draw the map").click()
    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=180_000)
    settle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Colour by").locator("input").click()
    page.get_by_role("option", name="object size").click()
    settle(page)
    number = page.get_by_label("Annotation id (or click a point)")
    number.fill(str(annotation_id))
    number.press("Enter")
    settle(page)
    page.get_by_text("this one").first.wait_for(timeout=60_000)
    chart = page.locator("[data-testid='stPlotlyChart']").first
    legend = chart.locator("g.legend").bounding_box()
    bar = chart.locator("g.colorbar").bounding_box()
    shot(page, "layout-map-more-like-this")
    assert legend and bar, "no legend or no colour bar drawn"
    dx = min(legend["x"] + legend["width"], bar["x"] + bar["width"]) - max(legend["x"], bar["x"])
    dy = min(legend["y"] + legend["height"], bar["y"] + bar["height"]) - max(legend["y"], bar["y"])
    return max(dx, 0) * max(dy, 0)


# widget labels in the page that are cut (an ellipsis) or break inside a word (a word wider than
# the label's box)
CUT_LABELS = """() => {
  const ctx = document.createElement("canvas").getContext("2d");
  const labels = document.querySelectorAll(
    "[data-testid='stMain'] [data-testid='stWidgetLabel'] [data-testid='stMarkdownContainer']");
  return [...labels].filter((e) => {
    ctx.font = getComputedStyle(e).font;
    const words = e.innerText.split(/\\s+/).map((w) => ctx.measureText(w).width);
    return e.scrollWidth > e.clientWidth + 1 || Math.max(0, ...words) > e.clientWidth + 0.5;
  }).map((e) => e.innerText);
}"""


# chart titles wider than their chart (plotly does not wrap a title: the rest is cut)
CUT_TITLES = """() => [...document.querySelectorAll("[data-testid='stPlotlyChart'] svg.main-svg")]
  .flatMap((svg) => {
    const box = svg.getBoundingClientRect();
    return [...svg.querySelectorAll("text.gtitle")].filter((t) => {
      const r = t.getBoundingClientRect();
      return r.right > box.right + 1 || r.left < box.left - 1;
    }).map((t) => t.textContent);
  })"""


def visit(page, url: str, title: str) -> None:
    """Open a page and wait until it is drawn (no script running, no placeholder left)."""
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    settle(page)
    for _ in range(60):
        if not page.locator("[data-testid='stSkeleton'], [data-stale='true']").count():
            break
        page.wait_for_timeout(500)
    settle(page)
    no_exception(page)


def test_every_page_at_three_widths(layout_url, browser, sample_root):
    from explorer.coco import open_index

    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    sample_annotation = int(index.annotations["id"][~index.annotations["iscrowd"]][0])
    wrong: list[str] = []
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 1000})
        page = context.new_page()
        for path, title in PAGES.items():
            visit(page, f"{layout_url}/{path}", title)
            where = f"{width} px {title}"
            shot(page, f"layout-{width}-{title.lower()}")
            if overflow(page) > 0:
                wrong.append(f"{where}: {overflow(page)} px wider than the window")
            if cut := page.evaluate(CUT_LABELS):
                wrong.append(f"{where}: labels cut or broken inside a word: {cut}")
            if cut := page.evaluate(CUT_TITLES):
                wrong.append(f"{where}: chart titles cut: {cut}")
            if sidebar_open(page) != (width > 800):
                wrong.append(f"{where}: sidebar {'open' if width == 800 else 'collapsed'}")
            if title in ("Compare", "Mistakes"):
                devices = device_selects(page)
                if len(devices) != 2 or any(d != ("auto", False) for d in devices):
                    wrong.append(f"{where}: Device selects show {devices}")
            if title == "Map" and width == WIDTHS[-1]:
                if overlap := legend_over_colour_bar(page, sample_annotation):
                    wrong.append(f"{where}: the legend overlaps the colour bar by {overlap}")
            if title == "Train":
                page.get_by_test_id("stMultiSelect").filter(has_text="Metrics").wait_for()
                choose_every_metric(page)
                shot(page, f"layout-{width}-train-metrics")
                if not page.get_by_text(BUDGET_NOTE).count():
                    wrong.append(f"{where}: the run's note {BUDGET_NOTE!r} is not shown")
                if cut := cut_chips(page):
                    wrong.append(f"{where}: chips cut: {cut}")
        context.close()
    assert not wrong, "\n".join(wrong)
