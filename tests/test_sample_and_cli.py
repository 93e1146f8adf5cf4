"""The embedded sample's layout and design; the CLI's stats, export-masks and sample commands."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from explorer.coco import masks, open_index
from explorer.coco.sample import write_sample
from tests.helpers import ROOT, pycoco, tiny


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "explorer", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


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


def test_cli_sample_prints_its_folder(tmp_path):
    r = run_cli("sample", "--out", str(tmp_path / "s"))
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path / "s")
    assert (tmp_path / "s" / "annotations" / "instances_train2017.json").is_file()


def test_cli_stats_json_equals_pycocotools():
    ann, images = tiny("val2017")
    r = run_cli("stats", "--coco", str(ann), "--images", str(images), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    ref = pycoco(ann)
    assert (got["images"], got["annotations"], got["crowd"]) == (
        len(ref.imgs),
        len(ref.anns),
        sum(a["iscrowd"] for a in ref.anns.values()),
    )
    for cat in got["categories"]:
        anns = [a for a in ref.dataset["annotations"] if a["category_id"] == cat["id"]]
        assert cat["name"] == ref.cats[cat["id"]]["name"]
        assert (cat["instances"], cat["images"]) == (len(anns), len({a["image_id"] for a in anns}))
    assert not [f for f in got["health"] if f["check"] == "missing_image_file"]


def test_cli_stats_human_summary():
    ann, _ = tiny("val2017")
    r = run_cli("stats", "--coco", str(ann))
    assert r.returncode == 0 and "80 images, 815 annotations (11 crowd)" in r.stdout
    assert "person" in r.stdout


def test_cli_export_masks_coco_and_voc(tmp_path):
    ann, _ = tiny("val2017")
    index = open_index(ann)
    ids = [int(i) for i in index.images["id"][:5]]
    for labels in ("coco", "voc"):
        out = tmp_path / labels
        r = run_cli(
            "export-masks",
            "--coco",
            str(ann),
            "--out",
            str(out),
            "--labels",
            labels,
            "--image-ids",
            *map(str, ids),
        )
        assert r.returncode == 0, r.stderr
        assert len(list(out.iterdir())) == 5
        for i in ids:
            row = index.image_row(i)
            name = index.images["file_name"][row].rsplit(".", 1)[0] + ".png"
            with Image.open(out / name) as im:
                assert im.mode == "L"
                np.testing.assert_array_equal(
                    np.asarray(im), masks.semantic_mask(index, row, labels)[0]
                )


def test_cli_export_masks_unknown_image_id(tmp_path):
    ann, _ = tiny("val2017")
    r = run_cli(
        "export-masks", "--coco", str(ann), "--out", str(tmp_path), "--image-ids", "123456789"
    )
    assert r.returncode == 2 and "no image with id 123456789" in r.stderr
