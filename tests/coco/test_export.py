"""export-masks: category id 0 kept apart from background, safe and unique names, honest counts."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.coco import export, masks, open_index
from explorer.errors import ExplorerError
from tests.helpers import pycoco, run_cli, square, tiny, write_coco

WILD = Path(__file__).resolve().parents[2].parent / "shared" / "wild-coco"


def wild(name: str) -> Path:
    path = WILD / name
    if not path.is_file():
        pytest.skip(f"wild-coco file not found at {path} (the shared/wild-coco folder)")
    return path


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def test_category_id_0_is_renumbered_not_painted_as_background(tmp_path):
    path = wild("09-labelme2coco-tony607.json")  # categories 0, 1, 2 (labelme2coco)
    report = export.export_semantic_masks(open_index(path), tmp_path, progress=False)
    assert report.remapped and report.written == len(pngs(tmp_path)) == 18
    table = json.loads((tmp_path / "labels.json").read_text())
    assert table["pixels"] == {
        "1": {"id": 0, "name": "date"},
        "2": {"id": 1, "name": "fig"},
        "3": {"id": 2, "name": "hazelnut"},
    }
    coco = pycoco(path)  # the truth: pycocotools' masks, painted with the label map
    pixel = {0: 1, 1: 2, 2: 3}
    for img in coco.imgs.values():
        want = np.zeros((img["height"], img["width"]), np.uint8)
        count = np.zeros(want.shape, np.uint16)
        for a in coco.imgToAnns[img["id"]]:
            m = coco.annToMask(a)
            np.maximum(want, m * pixel[a["category_id"]], out=want)
            count += m
        want[count > 1] = 255
        got = np.asarray(Image.open(tmp_path / (Path(img["file_name"]).stem + ".png")))
        np.testing.assert_array_equal(got, want)


def test_labelstudio_export_counts_what_was_skipped_while_opening(tmp_path):
    path = wild("05-labelstudio-bbox.json")  # category 0, images/x.jpg names, boxes only
    index = open_index(path)
    report = export.export_semantic_masks(index, tmp_path, progress=False)
    assert report.remapped and report.written == len(pngs(tmp_path)) == index.num_images
    assert all(p.parent == tmp_path / "images" for p in pngs(tmp_path))
    assert report.skipped_opening == [f for f in index.health if f["severity"] == "error"]


def test_coco_ids_are_kept_and_masks_equal_semantic_mask(tmp_path):
    ann, _ = tiny("val2017")
    index = open_index(ann)
    ids = [int(i) for i in index.images["id"][:4]]
    report = export.export_semantic_masks(index, tmp_path, image_ids=ids, progress=False)
    assert not report.remapped and report.written == len(pngs(tmp_path)) == 4
    assert not report.renamed and not report.skipped_images
    table = json.loads((tmp_path / "labels.json").read_text())["pixels"]
    assert table["1"] == {"id": 1, "name": "person"} and table["90"]["id"] == 90
    for i in ids:
        row = index.image_row(i)
        name = Path(index.images["file_name"][row]).with_suffix(".png")
        got = np.asarray(Image.open(tmp_path / name))
        np.testing.assert_array_equal(got, masks.semantic_mask(index, row)[0])


@pytest.mark.parametrize(
    "file_name, mask",
    [
        ("x.jpg", "x.png"),
        ("images\\a\\x.jpg", "images/a/x.png"),
        ("a/./b//x.jpg", "a/b/x.png"),
        ("/home/me/data/x.jpg", "x.png"),
        ("C:\\Users\\me\\x.jpg", "x.png"),
        ("q" * 300 + ".jpg", "7.png"),
        ("d" * 300 + "/x.jpg", "7.png"),
        (".", "7.png"),
        ("..", "7.png"),
        ("", "7.png"),
        ("../x.jpg", "7.png"),
        ("a\x00b.jpg", "7.png"),
        ("\ud800.jpg", "7.png"),  # a lone surrogate: not encodable as a file name
    ],
)
def test_mask_names_are_safe(file_name, mask):
    assert export.mask_name(file_name, 7)[0] == mask


def _coco_with_names(tmp_path: Path, names: list[str]) -> Path:
    images = [{"id": i, "file_name": n, "width": 40, "height": 30} for i, n in enumerate(names, 1)]
    anns = [
        {
            "id": i,
            "image_id": i,
            "category_id": 1,
            "bbox": [2, 2, 9, 9],
            "area": 81.0,
            "iscrowd": 0,
            "segmentation": square(2, 2, 9),
        }
        for i in range(1, len(names) + 1)
    ]
    return write_coco(tmp_path / "a.json", images, anns)


def test_same_stems_never_overwrite_each_other(tmp_path):
    names = ["x.jpg", "sub/x.jpg", "sub\\x.png", "X.jpg", "x.png", "labels.json", ".", "."]
    index = open_index(_coco_with_names(tmp_path, names))
    out = tmp_path / "out"
    report = export.export_semantic_masks(index, out, progress=False)
    written = sorted(str(p.relative_to(out)) for p in pngs(out))
    assert report.written == len(written) == len(names)
    assert written == sorted(
        ["x.png", "sub/x.png", "sub/x-3.png", "X-4.png", "x-5.png", "labels.png", "7.png", "8.png"]
    )
    assert {r["id"] for r in report.renamed} == {3, 4, 5, 7, 8}
    assert json.loads((out / "labels.json").read_text())["labels"] == "coco"


def test_every_output_stays_inside_out(tmp_path):
    index = open_index(_coco_with_names(tmp_path, ["link/x.jpg", "ok.jpg"]))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    report = export.export_semantic_masks(index, out, progress=False)
    assert report.written == 1 and list(elsewhere.iterdir()) == []
    assert report.skipped_images[0]["id"] == 1 and "outside" in report.skipped_images[0]["error"]


def test_full_disk_stops_with_one_error_and_keeps_whole_files(tmp_path, monkeypatch):
    index = open_index(_coco_with_names(tmp_path, ["a.jpg", "b.jpg", "c.jpg"]))
    real = export.atomic_file
    calls = []

    def filling(path):  # the disk fills up on the third mask
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)

    monkeypatch.setattr(export, "atomic_file", filling)
    with pytest.raises(ExplorerError, match="c.png: cannot write \\(No space left on device\\)"):
        export.export_semantic_masks(index, tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "labels.json"]


def test_cli_prints_the_truth(tmp_path):
    path = wild("09-labelme2coco-tony607.json")
    r = run_cli("export-masks", "--coco", str(path), "--out", str(tmp_path / "m"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote 18 masks to ")
    assert "note: category ids renumbered 1..3" in r.stdout and "labels.json" in r.stdout
    bad = write_coco(
        tmp_path / "bad.json",
        [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [1, 1, 5, 5],
                "area": 25.0,
                "iscrowd": 0,
                "segmentation": [[1, 1, 2, 2]],
            }
        ],
    )
    r = run_cli("export-masks", "--coco", str(bad), "--out", str(tmp_path / "b"), "--quiet")
    assert r.returncode == 0 and r.stdout.startswith("wrote 1 masks"), r.stderr
    assert "1 records skipped while opening" in r.stdout
    (tmp_path / "file").write_text("")
    to_a_file = ["--out", str(tmp_path / "file")]
    too_big_id = ["--out", str(tmp_path), "--image-ids", str(2**70)]
    for extra in (to_a_file, too_big_id):
        r = run_cli("export-masks", "--coco", str(bad), *extra)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("error: ")
