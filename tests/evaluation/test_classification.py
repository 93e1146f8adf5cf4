"""Classification tables scored on coco-tiny: the truth scores 1.0; known swaps give the exact
accuracy, confusion cells, recall and precision; image tables score "the predicted category is
among the image's"; an image without annotations is skipped, one without a row not
predicted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.coco import open_index
from explorer.evaluation.classification import NO_CATEGORIES, evaluate_classifications
from explorer.predictions.classification import read_classifications
from tests.helpers import square, tiny, write_coco

PERSON, CAR, TOOTHBRUSH = 1, 3, 90


@pytest.fixture(scope="module")
def index():
    return open_index(tiny()[0])


def _objects(index) -> tuple[np.ndarray, np.ndarray]:
    anns = index.annotations
    kept = ~anns["iscrowd"]
    return anns["id"][kept], anns["category_id"][kept].copy()


def _scored(index, frame: pd.DataFrame, tmp_path):
    frame.to_parquet(tmp_path / "table.parquet")
    return evaluate_classifications(index, read_classifications(tmp_path / "table.parquet", index))


def _row(index, category_id: int) -> int:
    return int(np.flatnonzero(index.category_ids == category_id)[0])


def test_the_truth_scores_one(index, tmp_path):
    ids, cats = _objects(index)
    e = _scored(index, pd.DataFrame({"annotation_id": ids, "category_id": cats}), tmp_path)
    assert (e["accuracy"], e["scored"], e["not_predicted"], e["skipped"]) == (1.0, len(ids), 0, 0)
    counts = np.bincount(np.searchsorted(e["category_ids"], cats), minlength=80)
    assert np.array_equal(np.array(e["confusion"]), np.diag(counts))
    rows = e["per_category"]
    assert all(r["recall"] in (1.0, None) and r["precision"] in (1.0, None) for r in rows)
    assert e["top5"] is None  # a plain table has no top-5


def test_known_swaps_give_exact_cells(index, tmp_path):
    """10 people predicted as cars and 4 cars as people; 20 objects left out of the table."""
    ids, cats = _objects(index)
    truth = cats.copy()
    people, cars = np.flatnonzero(cats == PERSON)[:10], np.flatnonzero(cats == CAR)[:4]
    cats[people], cats[cars] = CAR, PERSON
    kept = slice(0, len(ids) - 20)
    frame = pd.DataFrame({"annotation_id": ids[kept], "category_id": cats[kept]})
    e = _scored(index, frame, tmp_path)
    n = len(ids) - 20
    assert e["accuracy"] == (n - 14) / n and e["not_predicted"] == 20 and e["scored"] == n
    conf = np.array(e["confusion"])
    p, c = _row(index, PERSON), _row(index, CAR)
    n_people, n_cars = int((truth[kept] == PERSON).sum()), int((truth[kept] == CAR).sum())
    assert (conf[p, c], conf[c, p], conf[p, p], conf[c, c]) == (10, 4, n_people - 10, n_cars - 4)
    assert conf.sum() == n and np.trace(conf) == n - 14
    person, car = e["per_category"][p], e["per_category"][c]
    assert (person["truth"], person["predicted"]) == (n_people, n_people - 10 + 4)
    assert person["recall"] == (n_people - 10) / n_people == person["accuracy"]
    assert person["precision"] == (n_people - 10) / (n_people - 6)
    assert car["recall"] == (n_cars - 4) / n_cars
    assert car["precision"] == (n_cars - 4) / (n_cars - 4 + 10)


def _image_categories(index) -> list[set[int]]:
    anns = index.annotations
    out: list[set[int]] = [set() for _ in range(index.num_images)]
    for image, cat in zip(anns["image_row"].tolist(), anns["category_id"].tolist(), strict=True):
        out[image].add(cat)
    return out


def _image_table(index, categories: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"image_id": index.images["id"], "category_id": categories})


def test_an_image_table_is_right_when_the_category_is_in_the_image(index, tmp_path):
    held = _image_categories(index)
    first = [min(c) for c in held]
    e = _scored(index, _image_table(index, first), tmp_path)
    assert (e["accuracy"], e["target"], e["scored"]) == (1.0, "image", index.num_images)
    absent = [k for k, c in enumerate(held) if TOOTHBRUSH not in c][:7]
    wrong = list(first)
    for k in absent:
        wrong[k] = TOOTHBRUSH
    e = _scored(index, _image_table(index, wrong), tmp_path)
    assert e["accuracy"] == (index.num_images - 7) / index.num_images
    conf, t = np.array(e["confusion"]), _row(index, TOOTHBRUSH)
    # each image counts once per category it holds, at (that category, the predicted one)
    assert conf[:, t].sum() == sum(len(held[k]) for k in absent)
    for cat in (PERSON, CAR):
        r = _row(index, cat)
        holding = [k for k, c in enumerate(held) if cat in c]
        assert conf[r].sum() == len(holding) == e["per_category"][r]["truth"]
        assert conf[r, r] == sum(wrong[k] == cat for k in holding)
    toothbrush = e["per_category"][t]
    assert (toothbrush["predicted"], toothbrush["correct"], toothbrush["precision"]) == (7, 0, 0.0)


def test_images_without_annotations_are_skipped_and_images_without_rows_not_predicted(tmp_path):
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 50, "height": 50} for i in (1, 2, 3, 4)]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9], "area": 81,
         "segmentation": square(0, 0, 9), "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [20, 20, 9, 9], "area": 81,
         "segmentation": square(20, 20, 9), "iscrowd": 0},
        {"id": 12, "image_id": 2, "category_id": 3, "bbox": [0, 0, 9, 9], "area": 81,
         "segmentation": square(0, 0, 9), "iscrowd": 0},
        {"id": 13, "image_id": 4, "category_id": 90, "bbox": [0, 0, 9, 9], "area": 81,
         "segmentation": square(0, 0, 9), "iscrowd": 0},
    ]  # fmt: skip
    small = open_index(write_coco(tmp_path / "small.json", images, anns))
    frame = pd.DataFrame({"image_id": [1, 2, 3], "category_id": [3, 1, 1]})
    e = _scored(small, frame, tmp_path)
    assert e["skipped_reasons"] == {NO_CATEGORIES: 1} and e["skipped"] == 1
    assert (e["scored"], e["not_predicted"], e["accuracy"]) == (2, 1, 0.5)
    assert e["confusion"] == [[0, 1, 0], [1, 1, 0], [0, 0, 0]]  # person, car, toothbrush
    by_id = {r["category_id"]: r for r in e["per_category"]}
    assert by_id[3]["recall"] == 0.5 and by_id[3]["precision"] == 1.0
    assert by_id[1]["recall"] == 0.0 and by_id[1]["precision"] == 0.0
    assert by_id[90]["recall"] is None and by_id[90]["precision"] is None
