"""The embedded sample: its layout, its design (overlaps, crowd, both segmentation kinds), and
that it is generated the same every time."""

from __future__ import annotations

import numpy as np
from PIL import Image

from explorer.coco import masks, open_index
from explorer.coco.sample import write_sample
from tests.helpers import pycoco


def test_sample_layout_and_design(sample_root):
    for split, n_min in (("train2017", 300), ("val2017", 90)):
        ref = pycoco(sample_root / "annotations" / f"instances_{split}.json")
        cats = ref.dataset["categories"]
        assert len(cats) >= 6 and len({c["supercategory"] for c in cats}) >= 2
        assert len(ref.imgs) >= n_min
        crowd = [a for a in ref.anns.values() if a["iscrowd"]]
        assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
        multipart = [
            a for a in ref.anns.values() if not a["iscrowd"] and len(a["segmentation"]) > 1
        ]
        assert multipart, "occluding poles should split some objects into several polygons"
        per_image = np.bincount(
            [ref.imgs[a["image_id"]]["id"] - min(ref.imgs) for a in ref.anns.values()]
        )
        assert per_image.max() >= 4
        for img in list(ref.imgs.values())[:50]:
            with Image.open(sample_root / split / img["file_name"]) as im:
                assert im.size == (img["width"], img["height"]) and im.mode == "RGB"
                assert 160 <= max(im.size) <= 256
        overlaps = sum(
            (
                masks.semantic_mask(
                    open_index(sample_root / "annotations" / f"instances_{split}.json"), r
                )[0]
                == 255
            ).any()
            for r in range(40)
        )
        assert overlaps >= 1, "some objects should overlap (occlusion)"


def test_sample_is_deterministic(tmp_path, sample_root):
    again = write_sample(tmp_path / "again")
    for name in ("annotations/instances_val2017.json", "annotations/instances_train2017.json"):
        assert (again / name).read_bytes() == (sample_root / name).read_bytes()
    first = sorted((sample_root / "val2017").iterdir())[0]
    assert (again / "val2017" / first.name).read_bytes() == first.read_bytes()
