"""Issue 22: importing curves trained elsewhere: a missing folder says so, and this project's own
TensorBoard tags come back under the names the Train page draws."""

from __future__ import annotations

import pytest

from explorer.errors import ExplorerError
from explorer.training import runs


def write_run_logs(folder) -> None:
    """TensorBoard events as a run of this project writes them (two steps, one epoch)."""
    logs = runs.RunLogs(folder, None)
    for step in (1, 2):
        logs.step(
            {"kind": "step", "epoch": step / 2, "step": step, "train_loss": 1.0 / step,
             "lr": 0.1, "images_per_s": 10.0, "time": 0.0}
        )  # fmt: skip
    logs.epoch(
        {"kind": "epoch", "epoch": 1, "step": 2, "train_loss": 0.75, "val_loss": 0.5,
         "val_acc": 0.8, "lr": 0.1, "seconds": 1.0, "images_per_s": 10.0, "elapsed": 1.0,
         "time": 0.0}
    )  # fmt: skip
    logs.close()
    (folder / "metrics.jsonl").unlink()  # what is imported is the TensorBoard log alone


def test_a_missing_or_wrong_folder_says_what_it_is(tmp_path):
    with pytest.raises(ExplorerError, match=r"nowhere: no such folder$"):
        runs.import_tensorboard(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ExplorerError, match="file.txt: not a folder"):
        runs.import_tensorboard(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExplorerError, match="empty: no TensorBoard event files inside"):
        runs.import_tensorboard(tmp_path / "empty")


def test_this_projects_tags_import_under_the_curves_names(tmp_path):
    write_run_logs(tmp_path / "tb")
    curves = runs.import_tensorboard(tmp_path / "tb")
    assert set(curves["metric"]) == {runs.STEP_LOSS, "train_loss", "val_loss", "val_acc"}
    steps = curves[curves["metric"] == runs.STEP_LOSS]
    assert steps["step"].tolist() == [1, 2] and steps["value"].tolist() == pytest.approx([1, 0.5])
    assert set(curves["run"]) == {"tb"}


def test_subfolders_are_runs_and_other_tags_keep_their_names(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    write_run_logs(tmp_path / "tb" / "a")
    w = SummaryWriter(str(tmp_path / "tb" / "b"))
    w.add_scalar("Loss/train", 2.0, 1)
    w.close()
    curves = runs.import_tensorboard(tmp_path / "tb")
    assert set(curves["run"]) == {"tb/a", "tb/b"}
    assert set(curves[curves["run"] == "tb/b"]["metric"]) == {"Loss/train"}
    assert runs.STEP_LOSS in set(curves[curves["run"] == "tb/a"]["metric"])
