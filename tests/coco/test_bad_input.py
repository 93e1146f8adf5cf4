"""Each bad input of the issue: a documented exception or a skipped-and-reported record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from explorer.coco import masks, open_index
from explorer.coco.images import load_rgb, resolve_image_path
from explorer.errors import DatasetError, ImageError, SegmentationError, UnsafePathError
from tests.helpers import run_cli, square, write_coco

IMG = {"id": 1, "width": 20, "height": 10, "file_name": "a.jpg"}


def ann(i, **kw):
    return {
        "id": i,
        "image_id": 1,
        "category_id": 1,
        "segmentation": square(1, 1, 4),
        "area": 16.0,
        "bbox": [1, 1, 4, 4],
        "iscrowd": 0,
        **kw,
    }


def finding(index, check):
    found = [f for f in index.health if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in index.health]}"
    return found[0]


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'{"images": [{"id": 1, "width": 2', "not valid JSON (Input data was truncated)"),
        (b"[1, 2, 3]", "not a COCO instances file (Expected `object`, got `array`)"),
        (b'{"foo": 1}', "not a COCO instances file (no 'images' list)"),
        (b'{"images": [], "annotations": []}', "not a COCO instances file (no 'categories' list)"),
        (b"", "empty file"),
    ],
)
def test_bad_files_raise_dataset_error(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as e:
        open_index(path)
    assert str(e.value) == f"{path}: {reason}"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        open_index(tmp_path / "nope.json")
    with pytest.raises(DatasetError, match="is not a file"):
        open_index(tmp_path)


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text('{"images": [')
    for args in (
        ["stats", "--coco", str(path), "--json"],
        ["export-masks", "--coco", str(path), "--out", str(tmp_path / "m")],
        ["stats", "--coco", str(tmp_path / "missing.json")],
    ):
        r = run_cli(*args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr
        assert lines[0].startswith("error: ") and str(tmp_path) in lines[0]


def test_bad_records_are_skipped_and_reported(tmp_path):
    path = write_coco(
        tmp_path / "a.json",
        [
            IMG,
            {"id": 1, "width": 5, "height": 5, "file_name": "dup.jpg"},
            {"id": 2, "width": -1, "height": 5, "file_name": "negative.jpg"},
        ],
        [
            ann(1),
            ann(2, segmentation=[[1, 1, 3, 3]]),  # polygon of 2 points
            ann(
                3, segmentation={"counts": [0, 50], "size": [5, 10]}, iscrowd=1
            ),  # RLE size != image
            ann(4, image_id=99),  # unknown image
            ann(5, category_id=77),  # unknown category
            ann(6, bbox="not a box"),  # does not fit the schema
            ann(7, segmentation=[]),  # kept, a box only (as CVAT and Roboflow export boxes)
            ann(8, segmentation="text"),  # neither polygon nor RLE
            ann(9, bbox=[3, 3, 0, 2]),  # kept, degenerate box
            ann(9),  # kept, duplicate id
        ],
    )
    index = open_index(path)
    assert index.annotations["id"].tolist() == [1, 7, 9, 9]
    assert index.images["file_name"].tolist() == ["a.jpg"]
    for check, example in [
        ("bad_polygon", 2),
        ("boxes_only", 7),
        ("annotation_unknown_image", 4),
        ("annotation_unknown_category", 5),
        ("bad_segmentation", 8),
        ("degenerate_box", 9),
        ("duplicate_annotation_id", 9),
        ("duplicate_image_id", 1),
        ("bad_image_size", 2),
        ("unused_category", 3),
    ]:
        ids = [e["id"] if isinstance(e, dict) else e for e in finding(index, check)["examples"]]
        assert example in ids, (check, ids)
    assert finding(index, "rle_size_mismatch")["examples"][0]["id"] == 3
    # the panel shows the message: it names the category, the examples keep its id (JSON)
    assert finding(index, "unused_category")["message"].endswith(": car, toothbrush")
    assert finding(index, "bad_annotation_record")["examples"][0]["id"] == 6
    mask, skipped = masks.semantic_mask(index, 0)
    assert not skipped and mask[2, 2] == 255  # ann 1 and its duplicate-id twin overlap


def test_degenerate_part_dropped_at_decode_time(tmp_path):
    """A long polygon list whose later part is degenerate decodes from its valid part."""
    seg = square(1, 1, 4) + [[10.123456789, 1.123456789, 12.123456789, 1.123456789]]
    index = open_index(write_coco(tmp_path / "a.json", [IMG], [ann(1, segmentation=seg)]))
    m = masks.annotation_mask(index, 0)
    assert m[2, 2] == 1 and m[:, 9:].sum() == 0


def test_segmentation_error_is_reported_not_raised_per_image(tmp_path):
    bad = [[1.123456789, 1.123456789]] * 8  # long enough to pass the index's quick check
    index = open_index(write_coco(tmp_path / "a.json", [IMG], [ann(1), ann(2, segmentation=bad)]))
    inst, rows, skipped = masks.instance_masks(index, 0)
    assert rows.tolist() == [0] and skipped[0]["id"] == 2
    with pytest.raises(SegmentationError):
        masks.annotation_mask(index, 1)


def test_file_rewritten_after_opening_is_an_error_not_a_crash(tmp_path):
    path = write_coco(tmp_path / "a.json", [IMG], [ann(1)])
    index = open_index(path)
    path.write_text("{}")  # rewritten in place, shorter
    with pytest.raises(DatasetError, match="changed since it was opened"):
        masks.annotation_mask(index, 0)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "a/../../b.jpg", "", "a\x00.jpg", ".."]
)
def test_paths_never_escape_the_image_folder(tmp_path, name):
    with pytest.raises(UnsafePathError):
        resolve_image_path(tmp_path, name)


def test_safe_nested_path_is_allowed(tmp_path):
    assert resolve_image_path(tmp_path, "sub/x.jpg") == tmp_path / "sub" / "x.jpg"


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "I;16"])
def test_any_mode_loads_as_rgb(tmp_path, mode):
    ext = "jpg" if mode in ("L", "CMYK") else "png"
    path = tmp_path / f"x.{ext}"
    Image.new(mode, (8, 6)).save(path)
    img = load_rgb(path, (8, 6))
    assert img.shape == (6, 8, 3) and img.dtype == np.uint8


def test_corrupt_missing_and_wrong_size_images(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (32, 24), "red").save(good)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:200])
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_rgb(tmp_path / "cut.jpg")
    with pytest.raises(ImageError, match="not an image"):
        load_rgb(tmp_path / "text.jpg")
    with pytest.raises(ImageError, match="not found"):
        load_rgb(tmp_path / "none.jpg")
    with pytest.raises(ImageError, match="annotations say 10x10"):
        load_rgb(good, (10, 10))


def test_exif_rotated_image_matches_annotation_size(tmp_path):
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (40, 20), "blue").save(path, exif=exif)
    assert load_rgb(path, (40, 20)).shape == (20, 40, 3)  # stored orientation fits: kept
    assert load_rgb(path, (20, 40)).shape == (40, 20, 3)  # rotated orientation fits: rotated


def test_stats_json_lists_missing_image_files(tmp_path):
    path = write_coco(tmp_path / "a.json", [IMG], [ann(1)])
    (tmp_path / "imgs").mkdir()
    r = run_cli("stats", "--coco", str(path), "--images", str(tmp_path / "imgs"), "--json")
    assert r.returncode == 0, r.stderr
    checks = {f["check"]: f for f in json.loads(r.stdout)["health"]}
    assert checks["missing_image_file"]["examples"] == [1]


def test_a_malformed_compressed_rle_is_skipped_not_fatal(tmp_path):
    index = open_index(
        write_coco(
            tmp_path / "a.json",
            [IMG],
            [
                ann(1),
                ann(2, segmentation={"counts": "zzzz!!", "size": [10, 20]}, iscrowd=1),
                ann(3, segmentation={"counts": 123, "size": [10, 20]}, iscrowd=1),
            ],
        )
    )
    # skipped when the index is built, so no mask is ever asked for
    assert index.annotations["id"].tolist() == [1]
    assert [e["id"] for e in finding(index, "bad_rle")["examples"]] == [2, 3]
    mask, skipped = masks.semantic_mask(index, 0)
    assert mask[2, 2] == 1 and not skipped


def test_an_annotation_file_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    import os

    from explorer.coco import _build

    pipe = tmp_path / "instances.json"
    os.mkfifo(pipe)
    r = run_cli("stats", "--coco", str(pipe), "--json", timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {pipe}: ")
    with pytest.raises(DatasetError, match="not a regular file"):  # the reader's own guard
        _build.read_file(pipe)
