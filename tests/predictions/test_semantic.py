"""A folder of semantic-mask PNGs as predictions, on coco-tiny: the dataset's own export scores
1.0 against its truth (COCO ids and VOC labels, with and without labels.json); damaged PNGs are
skipped and counted by reason, never fatal; shifted masks score what the confusion matrix of
the decoded arrays says; folders that cannot be predictions are refused in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.coco import masks, open_index
from explorer.coco.export import export_semantic_masks, mask_names
from explorer.coco.labels import VOC_NAMES
from explorer.errors import PredictionsError
from explorer.evaluation.semantic import confusion_matrix, evaluate_masks, segmentation_scores
from explorer.predictions import semantic
from explorer.predictions.semantic import open_mask_folder
from tests.helpers import run_cli, tiny


@pytest.fixture(scope="module")
def index():
    return open_index(tiny()[0])


@pytest.fixture(scope="module")
def exported(index, tmp_path_factory) -> dict[str, Path]:
    """coco-tiny val's own masks as export-masks writes them: COCO ids (by the command) and
    VOC labels (by the library call)."""
    root = tmp_path_factory.mktemp("masks")
    done = run_cli("export-masks", "--coco", str(tiny()[0]), "--out", str(root / "coco"))
    assert done.returncode == 0, done.stderr
    export_semantic_masks(index, root / "voc", labels="voc", progress=False)
    return {"coco": root / "coco", "voc": root / "voc"}


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _scores(index, folder: Path):
    return evaluate_masks(index, open_mask_folder(folder, index))


@pytest.mark.parametrize("labels", ["coco", "voc"])
def test_the_truth_against_itself_scores_one(index, exported, labels):
    e = _scores(index, exported[labels])
    assert (e["pixel_acc"], e["miou"]) == (1.0, 1.0)
    assert e["labels"] == labels
    assert (e["images"], e["not_predicted"], e["unmatched"], e["skipped"]) == (80, 0, 0, 0)
    assert sum(r["truth_pixels"] for r in e["per_class"]) > 0
    assert all(r["iou"] in (1.0, None) for r in e["per_class"])
    if labels == "voc":
        assert e["classes"] == list(VOC_NAMES)


def test_a_folder_without_labels_json_reads_category_ids(index, exported, tmp_path):
    folder = _copy(exported["coco"], tmp_path)
    (folder / "labels.json").unlink()
    e = _scores(index, folder)
    assert (e["pixel_acc"], e["miou"], e["images"]) == (1.0, 1.0, 80)
    assert e["classes"][:3] == ["background", "person", "bicycle"]
    name = mask_names(index)[0]
    values = np.asarray(Image.open(folder / name)).copy()
    values[0, 0] = 12  # COCO left id 12 unused: no category has it
    Image.fromarray(values, mode="L").save(folder / name)
    assert _scores(index, folder)["skipped_reasons"] == {semantic.NOT_A_CATEGORY: 1}


def test_labels_json_decides_what_a_pixel_value_is(index, exported, tmp_path):
    """VOC labels 1..20 stored as 101..120, said so in labels.json: still the truth."""
    folder = _copy(exported["voc"], tmp_path)
    doc = json.loads((folder / "labels.json").read_text())
    doc["pixels"] = {str(int(k) + 100): v for k, v in doc["pixels"].items()}
    (folder / "labels.json").write_text(json.dumps(doc))
    for png in folder.rglob("*.png"):
        values = np.asarray(Image.open(png))
        moved = np.where((values > 0) & (values < 255), values + 100, values).astype(np.uint8)
        Image.fromarray(moved, mode="L").save(png)
    e = _scores(index, folder)
    assert (e["pixel_acc"], e["miou"], e["labels"]) == (1.0, 1.0, "voc")


def test_a_palette_png_is_read_by_its_indices(index, exported, tmp_path):
    folder = _copy(exported["coco"], tmp_path)
    for png in list(folder.rglob("*.png"))[:5]:
        palette = Image.open(png).convert("P")  # L -> P keeps each value as its index
        palette.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
        palette.save(png)
        assert Image.open(png).mode == "P"
    assert _scores(index, folder)["pixel_acc"] == 1.0


def _damage(folder: Path, index) -> dict[str, str]:
    """Damage six PNGs, one per reason, remove one and add one for no image; returns the
    damaged names by reason."""
    names = mask_names(index)
    kinds = ("size", "stray", "rgb", "truncated", "jpeg", "link", "gone")
    picks = dict(zip(kinds, names, strict=False))
    big = np.asarray(Image.open(folder / picks["size"]))
    Image.fromarray(np.pad(big, ((0, 1), (0, 0))), mode="L").save(folder / picks["size"])
    stray = np.asarray(Image.open(folder / picks["stray"])).copy()
    stray[0, 0] = 200  # no category has id 200
    Image.fromarray(stray, mode="L").save(folder / picks["stray"])
    Image.open(folder / picks["rgb"]).convert("RGB").save(folder / picks["rgb"])
    whole = (folder / picks["truncated"]).read_bytes()
    (folder / picks["truncated"]).write_bytes(whole[: len(whole) // 2])
    Image.open(folder / picks["jpeg"]).save(folder / picks["jpeg"], format="JPEG")
    outside = folder.parent / "outside.png"
    shutil.copy(folder / picks["link"], outside)  # the right mask, but out of the folder
    (folder / picks["link"]).unlink()
    os.symlink(outside, folder / picks["link"])
    (folder / picks["gone"]).unlink()
    shutil.copy(folder / names[-1], folder / "not-an-image-of-the-dataset.png")
    return picks


def test_damaged_pngs_are_skipped_and_counted(index, exported, tmp_path):
    folder = _copy(exported["coco"], tmp_path / "copy")
    _damage(folder, index)
    e = _scores(index, folder)
    assert e["skipped_reasons"] == {
        semantic.WRONG_SIZE: 1,
        semantic.NOT_IN_LABELS: 1,
        semantic.NOT_8_BIT: 1,
        semantic.UNREADABLE: 1,
        semantic.NOT_PNG: 1,
        semantic.OUTSIDE: 1,
    }
    assert e["skipped"] == 6
    assert (e["images"], e["not_predicted"], e["unmatched"]) == (73, 1, 1)
    assert (e["pixel_acc"], e["miou"]) == (1.0, 1.0)  # the rest are still the truth


def test_a_stray_value_is_named_against_labels_json(index, exported, tmp_path):
    folder = _copy(exported["voc"], tmp_path)
    name = mask_names(index)[0]
    values = np.asarray(Image.open(folder / name)).copy()
    values[0, 0] = 77  # VOC has labels 1..20
    Image.fromarray(values, mode="L").save(folder / name)
    assert _scores(index, folder)["skipped_reasons"] == {semantic.NOT_IN_LABELS: 1}


def test_shifted_masks_score_what_their_confusion_matrix_says(index, exported, tmp_path):
    """Every mask moved 7 pixels right and 3 down (overlaps as background): the scores equal
    those of the confusion matrix of the dataset's truth and the decoded shifted PNGs."""
    folder = _copy(exported["coco"], tmp_path)
    n = int(index.category_ids.max()) + 1
    conf = np.zeros((n, n), np.int64)
    for row, name in enumerate(mask_names(index)):
        shifted = np.roll(np.asarray(Image.open(folder / name)), (3, 7), axis=(0, 1))
        shifted = np.where(shifted == 255, 0, shifted).astype(np.uint8)
        Image.fromarray(shifted, mode="L").save(folder / name)
        truth, _ = masks.semantic_mask(index, row)
        conf += confusion_matrix(truth, np.asarray(Image.open(folder / name)), n)
    want = segmentation_scores(conf)
    e = _scores(index, folder)
    assert e["pixel_acc"] == want["pixel_acc"] and e["pixel_acc"] < 0.96
    assert e["miou"] == want["miou"] and e["miou"] < 0.9
    named = [i for i, r in enumerate(e["per_class"]) if r["iou"] is not None]
    values = [e["per_class"][i]["value"] for i in named]
    assert [e["per_class"][i]["iou"] for i in named] == pytest.approx(
        want["per_class_iou"][values].tolist(), rel=1e-12
    )
    every = [r["value"] for r in e["per_class"]]
    assert e["confusion"] == conf[np.ix_(every, every)].tolist()


def test_unlabelled_pixels_are_wrong_not_a_class(index, exported, tmp_path):
    """A mask all overlap value (255) labels nothing: every truth pixel is wrong, and no
    class gets an IoU from it."""
    folder = _copy(exported["coco"], tmp_path)
    name = mask_names(index)[0]
    blank = np.full_like(np.asarray(Image.open(folder / name)), 255)
    Image.fromarray(blank, mode="L").save(folder / name)
    for other in mask_names(index)[1:]:
        (folder / other).unlink()
    e = _scores(index, folder)
    truth, _ = masks.semantic_mask(index, 0)
    scored = int((truth != 255).sum())
    assert e["pixel_acc"] == 0.0 and e["miou"] == 0.0
    assert sum(r["unlabelled_pixels"] for r in e["per_class"]) == scored
    assert sum(r["predicted_pixels"] for r in e["per_class"]) == 0


def test_folders_that_cannot_be_predictions_are_refused(index, exported, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictionsError, match="no PNG files"):
        open_mask_folder(tmp_path / "empty", index)
    (tmp_path / "other").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "other" / "x.png")
    with pytest.raises(PredictionsError, match="none named after an image"):
        open_mask_folder(tmp_path / "other", index)
    folder = _copy(exported["coco"], tmp_path)
    (folder / "labels.json").write_text('{"pixels": {"300": {"id": 1}}}')
    with pytest.raises(PredictionsError, match="labels.json"):
        open_mask_folder(folder, index)


def test_eval_results_scores_a_folder(exported, tmp_path):
    folder = _copy(exported["coco"], tmp_path / "copy")
    _damage(folder, open_index(tiny()[0]))
    done = run_cli("eval-results", "--coco", str(tiny()[0]), "--results", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["pixel_acc"], out["miou"], out["skipped"], out["not_predicted"]) == (1, 1, 6, 1)
    assert sum(out["skipped_reasons"].values()) == 6
    text = run_cli("eval-results", "--coco", str(tiny()[0]), "--results", str(folder), "--quiet")
    assert text.returncode == 0, text.stderr
    assert "pixel accuracy 1.0000   mIoU 1.0000" in text.stdout
    assert "1 not predicted (no PNG: left out)" in text.stdout


def test_eval_results_refuses_a_folder_without_pngs_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_cli("eval-results", "--coco", str(tiny()[0]), "--results", str(tmp_path / "empty"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no PNG files" in done.stderr


def test_eval_results_refuses_coco_options_for_a_folder(exported):
    folder = str(exported["coco"])
    done = run_cli("eval-results", "--coco", str(tiny()[0]), "--results", folder, "--out", "x.pq")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "--out not for a folder of semantic-mask PNGs" in done.stderr
