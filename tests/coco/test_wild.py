"""COCO files as labelling tools write them (shared/wild-coco) and hostile ones open like
pycocotools opens them, or are refused with one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from explorer.coco import masks, open_index
from tests.helpers import ROOT, pycoco, run_cli, tiny, write_coco

WILD = ROOT.parent / "shared" / "wild-coco"
REFUSED = {"12-datumaro-panoptic.json": "panoptic", "21-cocoapi-results-bbox-list.json": "results"}


def wild_files() -> list[Path]:
    return sorted(WILD.glob("*.json")) if WILD.is_dir() else []


def stats_json(path: Path, tmp_path: Path) -> dict:
    r = run_cli("stats", "--coco", str(path), "--json", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _env(tmp_path: Path) -> dict:
    import os

    return {**os.environ, "EXPLORER_CACHE": str(tmp_path / "cache")}


@pytest.mark.skipif(not wild_files(), reason=f"wild-coco files not found at {WILD}")
@pytest.mark.parametrize("path", wild_files(), ids=lambda p: p.name)
def test_every_wild_file_counts_like_pycocotools_or_is_refused_in_one_line(path, tmp_path):
    if path.name in REFUSED:
        r = run_cli("stats", "--coco", str(path), "--json", env=_env(tmp_path))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"error: {path}: ") and REFUSED[path.name] in lines[0]
        return
    want = pycoco(path).dataset
    got = stats_json(path, tmp_path)
    per_category = {c["id"]: 0 for c in want["categories"]}
    for a in want["annotations"]:
        per_category[a["category_id"]] += 1
    assert got["annotations"] == len(want["annotations"])
    assert got["images"] == len(want["images"])
    assert {c["id"]: c["instances"] for c in got["categories"]} == per_category


def _detection_only(tmp_path: Path, drop_keys: bool) -> Path:
    doc = json.loads(tiny()[0].read_text())
    for a in doc["annotations"]:
        if drop_keys:
            for k in ("segmentation", "area", "iscrowd"):
                a.pop(k, None)
        else:
            a["segmentation"] = []
    out = tmp_path / "det.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize("drop_keys", [False, True], ids=["segmentation []", "keys left out"])
def test_detection_only_copies_keep_every_annotation_as_a_box(tmp_path, drop_keys):
    path = _detection_only(tmp_path, drop_keys)
    want = pycoco(path).dataset["annotations"]
    index = open_index(path, use_cache=False)
    assert index.num_annotations == len(want)
    boxes = {f["check"]: f for f in index.health}["boxes_only"]
    assert boxes["severity"] == "info" and boxes["count"] == len(want)
    row = int(index.annotations["image_row"][0])
    _, kept, skipped = masks.instance_masks(index, row)
    assert not len(kept) and all("box only" in s["error"] for s in skipped)
    mask, skipped = masks.semantic_mask(index, row)
    assert not mask.any() and not skipped
    if drop_keys:  # no area given: the box's
        w, h = index.annotations["bbox"][:, 2], index.annotations["bbox"][:, 3]
        assert (index.annotations["area"] == w * h).all()
        assert not index.annotations["iscrowd"].any()


def test_tools_quirks_are_read_like_pycocotools(tmp_path):
    images = [
        {"id": "0", "file_name": "a.jpg", "width": 20, "height": 10},
        {"id": "img-b", "file_name": "b.jpg"},  # no size: kept, boxes only
    ]
    anns = [
        {
            "id": "7",
            "image_id": "0",
            "category_id": 0,
            "bbox": [],
            "extra": {"x": 1},
            "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]],
        },
        {
            "id": 8,
            "image_id": "img-b",
            "category_id": 0,
            "bbox": [1, 1, 2, 2],
            "segmentation": [[1, 1, 3, 1, 3, 3]],
        },
        {"id": 9, "image_id": "0", "category_id": 0, "bbox": []},
    ]
    cats = [{"id": 0, "name": "thing", "supercategory": None}, {"id": "1", "name": "other"}]
    index = open_index(write_coco(tmp_path / "a.json", images, anns, cats), use_cache=False)
    assert index.annotations["id"].tolist() == [7, 8, 9]
    assert index.images["id"][0] == 0 and index.images["width"].tolist() == [20, 0]
    hashed = int(index.images["id"][1])
    assert hashed < -(2**62) and index.image_label(hashed) == "img-b"
    assert index.image_label(0) == "0"
    assert index.categories == [
        {"id": 0, "name": "thing", "supercategory": ""},
        {"id": 1, "name": "other", "supercategory": ""},
    ]
    assert index.annotations["bbox"].tolist() == [[1, 1, 4, 3], [1, 1, 2, 2], [0, 0, 0, 0]]
    checks = {f["check"]: f for f in index.health}
    assert checks["box_from_polygon"]["examples"] == [
        "7"
    ]  # as written and checks["no_box"]["examples"] == [9]
    assert checks["unknown_image_size"]["count"] == 1
    assert checks["boxes_only"]["examples"] == [8, 9]
    _, kept, _ = masks.instance_masks(index, 0)
    assert index.annotations["id"][kept].tolist() == [7]


def test_sizes_left_out_are_read_from_the_images(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (30, 20)).save(folder / "plain.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 20 wide, 30 high
    Image.new("RGB", (30, 20)).save(folder / "turned.jpg", exif=exif)
    images = [
        {"id": 1, "file_name": "plain.jpg"},
        {"id": 2, "file_name": "turned.jpg", "width": 0},
        {"id": 3, "file_name": "absent.jpg"},
        {"id": 4, "file_name": "../plain.jpg"},
    ]
    poly = [[1, 1, 9, 1, 9, 9, 1, 9]]
    anns = [{"id": i, "image_id": i, "category_id": 1, "segmentation": poly} for i in range(1, 5)]
    path = write_coco(tmp_path / "a.json", images, anns, [{"id": 1, "name": "thing"}])

    alone = open_index(path)
    assert alone.images["width"].tolist() == [0, 0, 0, 0]
    sized = open_index(path, images=folder)
    assert sized.fingerprint != alone.fingerprint
    assert sized.images["width"].tolist() == [30, 20, 0, 0]
    assert sized.images["height"].tolist() == [20, 30, 0, 0]
    assert sized.annotations["seg_kind"].tolist() == [0, 0, 3, 3]  # masks where sizes are known
    checks = {f["check"]: f for f in sized.health}
    assert checks["image_size_from_file"]["count"] == 2
    assert checks["unknown_image_size"]["count"] == 2
    assert open_index(path, images=folder).from_cache
    stack, kept, _ = masks.instance_masks(sized, 1)
    assert stack.shape[1:] == (30, 20) and stack.sum() == 64


def _one(tmp_path: Path, name: str, change) -> Path:
    ann, _ = tiny()
    d = json.loads(ann.read_text())
    im = dict(d["images"][0])
    doc = {
        "images": [im],
        "categories": d["categories"],
        "annotations": [
            {
                "id": 1,
                "image_id": im["id"],
                "category_id": d["categories"][0]["id"],
                "iscrowd": 0,
                "area": 400.0,
                "bbox": [10, 10, 20, 20],
                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
            }
        ],
    }
    doc = copy.deepcopy(doc)
    change(doc, im["height"], im["width"])
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def _seg(value):
    return lambda d, h, w: d["annotations"][0].__setitem__("segmentation", value(h, w))


HOSTILE = {
    "poly_1e12": _seg(lambda h, w: [[1e12, 5, 7e11, 3e12, 20, 4e12] * 20]),
    "poly_null": _seg(lambda h, w: [[10, 10, 30, 10, 30, None, 10, 30] + [12, 12] * 40]),
    "rle_short": _seg(lambda h, w: {"size": [h, w], "counts": [5, 100, 40]}),
    "rle_long": _seg(lambda h, w: {"size": [h, w], "counts": [w * h, w * h]}),
    "rle_negative": _seg(lambda h, w: {"size": [h, w], "counts": [-7, w * h + 7]}),
    "rle_huge": _seg(lambda h, w: {"size": [h, w], "counts": [2**40, 1]}),
    "rle_garbage": _seg(lambda h, w: {"size": [h, w], "counts": "\u0001\u00ff~~~~"}),
    "image_70000": lambda d, h, w: d["images"][0].update(width=70000, height=70000),
    "image_2pow33": lambda d, h, w: d["images"][0].update(width=2**33),
    "id_2pow64": lambda d, h, w: d["annotations"][0].update(id=2**64),
    "category_2pow63": lambda d, h, w: d["annotations"][0].update(category_id=2**63),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_record_is_skipped_and_never_reaches_pycocotools(tmp_path, name):
    index = open_index(_one(tmp_path, name, HOSTILE[name]), use_cache=False)
    errors = [f for f in index.health if f["severity"] == "error"]
    if index.num_annotations:  # long polygons are checked when a mask is made
        _, kept, skipped = masks.instance_masks(index, 0)
        assert not len(kept) and len(skipped) == 1
    else:
        assert errors


@pytest.mark.parametrize(
    "content, says",
    [
        (b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b', "images": []}', "nested too deeply"),
        (
            b'{"images": [{"id": 1, "file_name": "\xfe"}], "annotations": [], "categories": []}',
            "UTF-8",
        ),
        (
            b'[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}]',
            "python -m explorer eval-results --coco GT.json --results",
        ),
    ],
)
def test_files_that_cannot_be_instances_give_one_line(tmp_path, content, says):
    path = tmp_path / "a.json"
    path.write_bytes(content)
    r = run_cli("stats", "--coco", str(path), "--json", env=_env(tmp_path))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and says in lines[0], r.stderr


def test_stats_on_a_results_file_says_how_to_evaluate_it_and_open_it(tmp_path):
    path = tmp_path / "detections.json"
    path.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}]')
    r = run_cli("stats", "--coco", str(path), env=_env(tmp_path))
    (line,) = r.stderr.strip().splitlines()
    assert r.returncode == 2
    assert f"python -m explorer eval-results --coco GT.json --results {path}" in line
    assert "--predictions" in line and "Evaluate page" in line


def test_a_bom_is_accepted(tmp_path):
    path = write_coco(tmp_path / "a.json", [{"id": 1, "width": 4, "height": 4}], [])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert open_index(path, use_cache=False).num_images == 1
