"""Where a dataset trains: a COCO layout's train split validated on its val split, else a
seeded 20% of the source held out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from explorer.coco.sources import (
    TrainingSplit,
    find_splits,
    from_files,
    training_split,
)
from tests.helpers import tiny, write_coco


def _layout(root: Path, splits: list[str], image_folders: list[str] | None = None) -> Path:
    """A COCO layout with empty instances files (training_split reads no JSON)."""
    (root / "annotations").mkdir(parents=True)
    for s in splits:
        (root / "annotations" / f"instances_{s}.json").write_text("{}")
    for s in splits if image_folders is None else image_folders:
        (root / s).mkdir()
    return root


@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_sample_trains_on_train_and_validates_on_val(sample_root, split):
    source = from_files(str(sample_root / "annotations" / f"instances_{split}.json"))
    got = training_split(source)
    ann = sample_root / "annotations"
    assert got == TrainingSplit(
        coco=str(ann / "instances_train2017.json"),
        images=str(sample_root / "train2017"),
        val_coco=str(ann / "instances_val2017.json"),
        val_images=str(sample_root / "val2017"),
        label=f"{sample_root.name}: train2017, validated on val2017",
    )


def test_coco_tiny_trains_on_train_and_validates_on_val():
    ann, _ = tiny("val2017")
    root = ann.parent.parent
    for source in find_splits(root):
        got = training_split(source)
        assert (got.coco, got.val_coco) == (
            str(ann.parent / "instances_train2017.json"),
            str(ann),
        )
        assert (got.images, got.val_images) == (str(root / "train2017"), str(root / "val2017"))
        assert got.label == "coco-tiny: train2017, validated on val2017"


def test_a_lone_file_holds_out_a_seeded_fifth(tmp_path):
    ann = write_coco(tmp_path / "mine.json", [], [])
    source = from_files(str(ann), str(tmp_path))
    got = training_split(source)
    assert got == TrainingSplit(
        coco=str(ann),
        images=str(tmp_path),
        val_coco=None,
        val_images=None,
        label="mine.json with a seeded 20% of its images held out for validation",
    )


def test_split_names_are_read_from_the_files_present(tmp_path):
    root = _layout(tmp_path / "data", ["train", "validation"])
    got = training_split(find_splits(root)[0])
    assert (got.coco, got.val_coco) == (
        str(root / "annotations" / "instances_train.json"),
        str(root / "annotations" / "instances_validation.json"),
    )
    assert got.label == "data: train, validated on validation"


def test_the_sources_own_split_and_matching_suffixes_win(tmp_path):
    root = _layout(tmp_path / "coco", ["train2014", "val2014", "train2017", "val2017"])
    by_split = {s.label.split()[-1]: s for s in find_splits(root)}
    assert training_split(by_split["val2017"]).label == "coco: train2017, validated on val2017"
    assert training_split(by_split["train2014"]).label == "coco: train2014, validated on val2014"


def test_a_split_without_its_image_folder_does_not_count(tmp_path):
    root = _layout(tmp_path / "coco", ["train2017", "val2017"], image_folders=["train2017"])
    source = find_splits(root)[0]
    got = training_split(source)
    assert got.val_coco is None and got.coco == source.annotations


def test_annotations_outside_a_coco_layout_hold_out(tmp_path):
    for s in ("train2017", "val2017"):
        (tmp_path / f"instances_{s}.json").write_text("{}")
        (tmp_path / s).mkdir()
    got = training_split(from_files(str(tmp_path / "instances_val2017.json")))
    assert got.val_coco is None


def test_the_split_is_a_frozen_value(sample_root):
    got = training_split(find_splits(sample_root)[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.coco = "elsewhere"  # type: ignore[misc]
