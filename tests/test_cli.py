"""The CLI as a user runs it: sample, stats and export-masks (model commands are tested with
their modules)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from explorer.coco import masks, open_index
from tests.helpers import pycoco, run_cli, tiny


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
        assert len(list(out.glob("*.png"))) == 5
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


def test_cli_predict_says_why_a_segmenter_wrote_nothing(sample_root, tmp_path):
    """Issue 12: "wrote 0 segmentation results" without a reason, under a stray second bar."""
    ann = sample_root / "annotations" / "instances_val2017.json"
    ids = [str(i) for i in open_index(ann).images["id"][:3]]
    common = ["--coco", str(ann), "--images", str(sample_root / "val2017")]
    model = ["--model", "deeplabv3-mobilenet-v3-large", "--weights", "untrained"]
    r = run_cli("predict", *common, *model, "--out", str(tmp_path / "r.json"), "--image-ids", *ids)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote 0 segmentation results for 3 images")
    assert "none of deeplabv3-mobilenet-v3-large's labels has a category of the same name" in (
        r.stdout
    )
    bars = [b for b in r.stderr.replace("\r", "\n").split("\n") if b.startswith("predict:")]
    assert bars and all("/3 [" in b for b in bars)  # one bar, no total-less "0img [" one
    r = run_cli("evaluate", *common, *model, "--image-ids", *ids, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "note: 7 categories have no VOC class of the same name, not scored: circle" in r.stderr


def test_a_closed_pipe_ends_quietly(sample_root):
    """``python -m explorer stats ... | true``: the reader is gone before anything is written;
    no traceback, no "Exception ignored" at exit."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    ann = sample_root / "annotations" / "instances_val2017.json"
    r = subprocess.run(
        f"'{sys.executable}' -m explorer stats --coco '{ann}' | true; echo $?",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.stderr == "", r.stderr
