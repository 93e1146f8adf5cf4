"""Overlays: the colour legend names exactly the colours painted."""

from __future__ import annotations

import numpy as np

from explorer.coco import masks, open_index
from explorer.viz import overlays


def test_legend_names_each_painted_colour(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    truth, _ = masks.semantic_mask(index, 0, "coco")
    colours = overlays.category_colours(index)
    names = {c["id"]: c["name"] for c in index.categories}
    entries = overlays.legend(truth, colours, names, skip=(0, 255))
    painted = sorted(set(np.unique(truth).tolist()) - {0, 255})
    assert [n for n, _ in entries] == [names[v] for v in painted]
    assert [c for _, c in entries] == [tuple(int(x) for x in colours[v]) for v in painted]
    html = overlays.legend_markdown(entries)
    assert html.count("■") == len(painted) and all(names[v] in html for v in painted)
    assert overlays.legend_markdown(overlays.legend(np.zeros((4, 4), np.uint8), colours, [])) == ""
    # a label without a name still gets one
    assert overlays.legend(np.full((2, 2), 7, np.uint8), colours, ["bg"]) == [
        ("label 7", tuple(int(x) for x in colours[7]))
    ]
