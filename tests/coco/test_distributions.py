"""stats.distributions: the Distributions page's numbers in one value, against pycocotools."""

from __future__ import annotations

import numpy as np

from explorer.coco import open_index, stats
from tests.helpers import pycoco, tiny


def test_distributions_of_some_images_match_pycocotools():
    ann, _ = tiny("val2017")
    index, ref = open_index(ann), pycoco(ann)
    rows = np.arange(0, index.num_images, 2)
    d = stats.distributions(index, rows)
    ids = {int(i) for i in index.images["id"][rows]}
    anns = [a for a in ref.dataset["annotations"] if a["image_id"] in ids]
    assert (d.images, d.annotations) == (len(rows), len(anns))
    person = index.categories.index(next(c for c in index.categories if c["id"] == 1))
    assert d.counts["instances"][person] == sum(a["category_id"] == 1 for a in anns)
    assert d.cooccurrence[person, person] == len(
        {a["image_id"] for a in anns if a["category_id"] == 1}
    )
    assert sorted(d.per_image.tolist()) == sorted(len(ref.imgToAnns[i]) for i in ids)
    assert len(d.widths) == len(rows) and len(d.geometry["cx"]) <= len(anns)
    whole = stats.distributions(index)
    assert whole.images == index.num_images and whole.annotations == len(ref.dataset["annotations"])
