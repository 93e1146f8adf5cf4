"""Benchmark: the app's server-side costs (targets of the app issue).

1. Browse rerun that changes only the opacity slider, with the train2017-scale index loaded
   (AppTest, whole script run; target < 0.3 s).
2. Distributions page charts, warm, train2017 scale (stats + figures, and the AppTest page run;
   target < 1 s).
3. One image detail with all overlays, typical COCO image (~7 annotations, real JPEG; < 100 ms).
4. A grid page of 48 thumbnails of real COCO images, cold (no cache) and warm (< 1.5 s / 0.3 s).

usage: python bench/bench_app.py [--big /tmp/bench_train2017.json] [--coco ../shared/coco-tiny]
(the big file is written by bench/bench_index.py when missing)
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timeit(fn, repeat: int = 5) -> tuple[float, float]:
    """(median, min) seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


Result = tuple[str, float, float, str]  # measurement, median s, best s, target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", default="/tmp/bench_train2017.json")
    ap.add_argument("--coco", default=str(ROOT.parent / "shared" / "coco-tiny"))
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="bench-app-")
    os.environ["EXPLORER_CACHE"] = cache
    big = Path(args.big)
    if not big.is_file():
        from bench.bench_index import write_big_file

        write_big_file(big)
    results: list[Result] = []
    try:
        results += big_index(big)
        results += real_images(Path(args.coco), Path(cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'measurement':78}{'median s':>10}{'best s':>9}  target")
    for name, med, best, target in results:
        print(f"{name:78}{med:10.3f}{best:9.3f}  {target}")


def big_index(big: Path) -> list[Result]:
    """1. the opacity rerun and 2. the Distributions page, on the train2017-scale index."""
    import numpy as np
    from streamlit.testing.v1 import AppTest

    from explorer.coco import open_index

    os.environ["EXPLORER_COCO"] = str(big)
    index = open_index(big)
    row = int(np.flatnonzero(np.diff(index.images["ann_start"]) == 7)[0])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["image_id"] = str(int(index.images["id"][row]))
    at.run()
    assert not at.exception, at.exception
    values = iter(np.linspace(0.1, 0.9, 50))
    med, best = timeit(lambda: at.slider(key="d_alpha").set_value(float(next(values))).run(), 7)
    assert not at.exception
    results = [
        ("Browse rerun, opacity slider changed (118k-image index, AppTest)", med, best, "< 0.3 s")
    ]
    dist = functools.partial(distribution_figures, index)
    dist()
    med, best = timeit(dist, 5)
    results.append(
        ("Distributions: all stats + 10 figures, warm (118k images)", med, best, "< 1 s")
    )
    at.switch_page("pages/distributions.py").run()
    med, best = timeit(lambda: at.run(), 3)
    assert not at.exception
    results.append(
        ("Distributions page, whole AppTest run, warm (118k images)", med, best, "< 1 s")
    )
    results.append(page_turn(index))
    del os.environ["EXPLORER_COCO"]
    return results


def page_turn(index) -> Result:
    """A Browse page turn at train2017 scale: 24 thumbnails drawn cold (no disk cache; the big
    file has no images, so each is a 640x480-class canvas with its masks)."""
    from explorer.coco.dataset import Dataset
    from explorer.paths import cache_dir
    from explorer.viz import overlays as render

    pages = [range(p * 24, p * 24 + 24) for p in range(1000, 1005)]
    times = []
    for rows in pages:
        shutil.rmtree(cache_dir("thumbs"), ignore_errors=True)
        t = time.perf_counter()
        for r in rows:
            render.thumbnail_jpeg(Dataset(index), r)
        times.append(time.perf_counter() - t)
    name = "Browse page turn: 24 thumbnails drawn, cold (118k-image index)"
    return (name, statistics.median(times), min(times), "< 0.5 s")


def distribution_figures(index) -> list:
    """Every statistic and figure of the Distributions page."""
    from explorer.coco import stats
    from explorer.viz.figures import distributions as charts

    c = stats.category_counts(index)
    g = stats.box_geometry(index)
    return [
        charts.category_bars(index.categories, c["instances"], "i"),
        charts.category_bars(index.categories, c["images"], "m"),
        charts.category_sunburst(index.categories, c["instances"]),
        charts.size_class_bars(index.categories, stats.size_classes(index)),
        charts.log_histogram(g["area"], "a", "a"),
        charts.count_histogram(stats.instances_per_image(index), "n", "n"),
        charts.cooccurrence_heatmap(index.categories, stats.cooccurrence(index)),
        charts.log_histogram(g["aspect"], "r", "r"),
        charts.centre_heatmap(g["cx"], g["cy"]),
        charts.image_size_scatter(index.images["width"], index.images["height"]),
    ]


def real_images(coco: Path, cache: Path) -> list[Result]:
    """3. one image detail and 4. a grid of 48 thumbnails, on real COCO images."""
    import numpy as np

    from explorer.coco import open_index
    from explorer.coco.dataset import Dataset
    from explorer.viz import overlays as render

    ann = coco / "annotations" / "instances_val2017.json"
    images = coco / "val2017"
    tiny = open_index(ann)
    n = np.diff(tiny.images["ann_start"])
    typical = int(np.argmin(np.abs(n - 7)))

    def detail():
        rgb, _ = render.compose_overlay(Dataset(tiny, images), typical)
        return render.encode_jpeg(rgb)

    detail()
    med, best = timeit(detail, 20)
    results = [
        (
            f"Image detail, all overlays + JPEG ({n[typical]} annotations, "
            f"{tiny.images['width'][typical]}x{tiny.images['height'][typical]})",
            med,
            best,
            "< 0.1 s",
        )
    ]
    return results + thumbnail_grid(tiny, ann, images, cache)


def thumbnail_grid(tiny, ann: Path, images: Path, cache: Path) -> list[Result]:
    """4. a grid of 48 thumbnails: cold, warm, and the whole Browse page rerun."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from explorer.coco.dataset import Dataset
    from explorer.viz import overlays as render

    rows = list(range(min(48, tiny.num_images))) + list(range(max(0, 48 - tiny.num_images)))

    def grid():
        return [render.thumbnail_jpeg(Dataset(tiny, images), r) for r in rows]

    cold = []
    for _ in range(3):
        shutil.rmtree(cache / "thumbs", ignore_errors=True)
        t = time.perf_counter()
        grid()
        cold.append(time.perf_counter() - t)
    results = [
        (
            "Grid of 48 thumbnails, cold (decode + masks + encode)",
            statistics.median(cold),
            min(cold),
            "< 1.5 s",
        )
    ]
    med, best = timeit(grid, 5)
    results.append(("Grid of 48 thumbnails, warm (disk cache)", med, best, "< 0.3 s"))
    st.cache_data.clear()
    st.cache_resource.clear()
    os.environ["EXPLORER_COCO"], os.environ["EXPLORER_IMAGES"] = str(ann), str(images)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.selectbox(key="b_page_size").set_value(48).run()
    med, best = timeit(lambda: at.run(), 5)
    results.append(("Browse grid page of 48, whole AppTest rerun, warm", med, best, "< 0.3 s"))
    return results


if __name__ == "__main__":
    main()
