"""Classification tables read as predictions, on coco-tiny: predict's own table (made by its own
writer, the model's outputs stubbed: no weights here) and a user's plain table; rows that cannot
be scored skipped and counted by reason; tables without the needed columns refused in one
line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.coco.labels import dataset_label_map
from explorer.errors import PredictionsError
from explorer.inference import classification as predict_tables
from explorer.predictions import classification as tables
from explorer.predictions.classification import read_classifications
from tests.helpers import run_cli, tiny


@pytest.fixture(scope="module")
def index():
    return open_index(tiny()[0])


def _objects(index) -> tuple[np.ndarray, np.ndarray]:
    """(annotation ids, category ids) of the non-crowd annotations, in file order."""
    anns = index.annotations
    kept = ~anns["iscrowd"]
    return anns["id"][kept], anns["category_id"][kept]


def _stub_classifier(index, swaps: dict[int, int]):
    """A classifier of the dataset's own categories whose top-1 on annotation ``a`` is
    category ``swaps.get(a, its truth)``, top-2..5 the next categories in file order; it
    cannot read annotation -1's image (none has that id: see ``unreadable``)."""
    names = [c["name"] for c in index.categories]
    label_of = {c["id"]: i for i, c in enumerate(index.categories)}
    truth = dict(zip(*(a.tolist() for a in _objects(index)), strict=True))
    model = SimpleNamespace(
        name="stub",
        weights_label="stub",
        untrained=False,
        class_names=names,
        category_of_label=lambda cats: dataset_label_map("dataset", names, cats),
    )

    def predict(_model, _dataset, items, _options):
        for it in items:
            first = label_of[swaps.get(it.annotation_id, truth[it.annotation_id])]
            top = np.array([(first + k) % len(names) for k in range(5)])
            yield it, (top, np.linspace(0.6, 0.1, 5)), ""

    return model, predict


def _predict_table(index, monkeypatch, swaps: dict[int, int]):
    """The table ``predict --crops`` writes, by its own writer, for a stubbed model."""
    model, stub = _stub_classifier(index, swaps)
    monkeypatch.setattr(predict_tables, "predict", stub)
    dataset = Dataset(index, tiny()[1])
    return predict_tables.classification_table(model, dataset, crops=True)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_predicts_crops_table_reads_with_top5(index, monkeypatch, tmp_path, suffix):
    ids, cats = _objects(index)
    swaps = {int(ids[0]): int(cats[1]) if cats[1] != cats[0] else 90}
    table = _predict_table(index, monkeypatch, swaps)
    table.loc[1, "error"] = "cannot read image"  # what predict writes for an unreadable image
    table.loc[2, "mapped_category_id"] = -1  # a label with no dataset category
    path = tmp_path / f"crops{suffix}"
    table.to_parquet(path, index=False) if suffix == ".parquet" else table.to_csv(path, index=False)
    read = read_classifications(path, index)
    assert read.target == "annotation"
    assert read.skipped == {tables.UNREADABLE_IMAGE: 1, tables.NO_CATEGORY: 1}
    kept = table.drop(index=[1, 2])
    assert read.ids.tolist() == kept["annotation_id"].tolist()
    truth = dict(zip(ids.tolist(), cats.tolist(), strict=True))
    want = [swaps.get(a, truth[a]) for a in kept["annotation_id"].tolist()]
    assert index.category_ids[read.category_row].tolist() == want
    assert read.score is not None and np.allclose(read.score, 0.6)
    assert read.top_rows is not None and read.top_rows.shape == (len(ids) - 2, 5)
    assert (read.top_rows[:, 1:] == (read.top_rows[:, :1] + np.arange(1, 5)) % 80).all()


def test_labels_of_another_space_give_no_top5(index, tmp_path):
    ids, cats = _objects(index)
    frame = pd.DataFrame({"annotation_id": ids, "mapped_category_id": cats})
    for k in range(1, 6):
        frame[f"top{k}"] = "tabby" if k == 2 else "person"  # ImageNet's "tabby" is no category
    frame.to_parquet(tmp_path / "imagenet.parquet")
    read = read_classifications(tmp_path / "imagenet.parquet", index)
    assert read.top_rows is None and len(read) == len(ids)


def test_bad_rows_are_skipped_and_counted(index, tmp_path):
    ids, cats = _objects(index)
    crowd = int(index.annotations["id"][index.annotations["iscrowd"]][0])
    rows = [
        ("x", 1),  # not an integer
        ("1.5", 1),
        ("", 1),  # missing
        ("999999999999", 1),  # no such annotation
        (str(crowd), 1),
        (str(ids[0]), "cat"),  # not an integer
        (str(ids[1]), 12),  # COCO has no category 12
        (str(ids[2]), -1),  # in a user's category_id, -1 is just not a category
        (str(ids[3]), cats[3]),
        (f"{ids[3]}.0", cats[3]),  # the same id again
        (str(ids[4]), f"{cats[4]}.0"),  # a whole float is an integer
    ]
    lines = ["annotation_id,category_id,score"] + [f"{a},{c},0.5" for a, c in rows]
    (tmp_path / "user.csv").write_text("\n".join(lines) + "\n")
    read = read_classifications(tmp_path / "user.csv", index)
    assert read.skipped == {
        tables.BAD_ID: 3,
        tables.UNKNOWN_ID: 1,
        tables.CROWD: 1,
        tables.BAD_CATEGORY: 1,
        tables.UNKNOWN_CATEGORY: 2,
        tables.DUPLICATE: 1,
    }
    assert read.ids.tolist() == [ids[3], ids[4]]
    assert index.category_ids[read.category_row].tolist() == [cats[3], cats[4]]


def test_an_image_table_names_images(index, tmp_path):
    frame = pd.DataFrame({"image_id": index.images["id"], "category_id": 1, "score": 0.9})
    frame.to_parquet(tmp_path / "images.parquet")
    read = read_classifications(tmp_path / "images.parquet", index)
    assert read.target == "image" and read.rows.tolist() == list(range(index.num_images))


@pytest.mark.parametrize(
    ("columns", "needs"),
    [
        ({"id": [1], "category_id": [1]}, "annotation_id or image_id"),
        ({"annotation_id": [1], "label": ["person"]}, "category_id"),
    ],
)
def test_a_table_without_the_needed_columns_is_refused(index, tmp_path, columns, needs):
    pd.DataFrame(columns).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(PredictionsError, match=needs):
        read_classifications(tmp_path / "t.csv", index)
    done = run_cli("eval-results", "--coco", str(tiny()[0]), "--results", str(tmp_path / "t.csv"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and needs in done.stderr


def test_files_that_are_not_tables_are_refused(index, tmp_path):
    with pytest.raises(PredictionsError, match="no such file"):
        read_classifications(tmp_path / "missing.csv", index)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(PredictionsError, match="not a readable table"):
        read_classifications(tmp_path / "bad.parquet", index)
    (tmp_path / "t.tsv").write_text("annotation_id\tcategory_id\n")
    with pytest.raises(PredictionsError, match=".csv or .parquet"):
        read_classifications(tmp_path / "t.tsv", index)


def test_eval_results_scores_predicts_table(index, monkeypatch, tmp_path):
    ids, _ = _objects(index)
    table = _predict_table(index, monkeypatch, {int(ids[0]): 90})
    table.to_csv(tmp_path / "crops.csv", index=False)
    done = run_cli(
        "eval-results", "--coco", str(tiny()[0]), "--results", str(tmp_path / "crops.csv"), "--json"
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    tops = table[[f"top{k}" for k in range(1, 6)]].to_numpy()
    in_top5 = (tops == table["true_category"].to_numpy()[:, None]).any(axis=1)
    assert out["accuracy"] == (len(ids) - 1) / len(ids)
    assert out["top5"] == in_top5.mean() and in_top5.sum() >= len(ids) - 1
    assert (out["skipped"], out["skipped_reasons"], out["scored"]) == (0, {}, len(ids))
    text = run_cli(
        "eval-results", "--coco", str(tiny()[0]), "--results", str(tmp_path / "crops.csv")
    )
    assert f"{len(ids):,} rows scored" in text.stdout and "top-1 accuracy 0.99" in text.stdout
