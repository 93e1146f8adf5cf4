"""The Ray engine (a local cluster) gives what the local runner gives, through the same cache,
and reports an unreadable image as a record, not a failure."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference import runner as infer
from explorer.inference.cache import predict
from explorer.inference.options import RunOptions
from explorer.models import WeightsFile, load_model

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")
from explorer.inference.ray_engine import RayEngine  # noqa: E402

ENGINE = RayEngine(workers=1)


@pytest.fixture(scope="module", autouse=True)
def _cluster():
    yield
    ray.shutdown()


def test_crops_on_ray_equal_local(real, alexnet_file):
    index, images = real
    model = load_model("alexnet", WeightsFile(alexnet_file))
    items = infer.items_for_crops(index, range(3))
    local = {
        it.key: out
        for it, out, _ in infer.run(model, Dataset(index, images), items, RunOptions(workers=0))
    }
    remote = {p.item.key: p for p in ENGINE.run(model, Dataset(index, images), items, RunOptions())}
    assert set(remote) == set(local) and len(local) > 10
    for key, (_, out, err) in remote.items():
        assert err is None
        assert np.argmax(out) == np.argmax(local[key])
        assert np.abs(out - local[key]).max() < 1e-4


def test_features_on_ray_equal_local(real, alexnet_file):
    """The object map's features (penultimate layer) come the same from a Ray actor."""
    from explorer.models.features import feature_model

    index, images = real
    model = feature_model(load_model("alexnet", WeightsFile(alexnet_file)))
    items = infer.items_for_crops(index, range(2))
    local = {
        it.key: out
        for it, out, _ in infer.run(model, Dataset(index, images), items, RunOptions(workers=0))
    }
    remote = {
        p.item.key: p.output for p in ENGINE.run(model, Dataset(index, images), items, RunOptions())
    }
    assert set(remote) == set(local) and len(local) > 3
    for key, out in remote.items():
        assert out.shape == (4096,)  # AlexNet's penultimate layer, not its 1000 logits
        assert np.abs(out - local[key]).max() < 1e-3 * max(1.0, np.abs(local[key]).max())


def test_segmentation_on_ray_equals_local(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file))
    items = infer.items_for_images(index, range(2))
    local = {
        it.key: out
        for it, out, _ in infer.run(model, Dataset(index, images), items, RunOptions(workers=0))
    }
    remote = {
        p.item.key: p.output for p in ENGINE.run(model, Dataset(index, images), items, RunOptions())
    }
    assert set(remote) == set(local)
    for key, (labels, scores) in remote.items():
        assert labels.shape == local[key][0].shape
        assert (labels == local[key][0]).mean() > 0.999
        assert set(scores) == set(local[key][1])


def test_unreadable_image_is_a_record_and_the_cache_resumes(real, alexnet_file, tmp_path):
    index, images = real
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    items = infer.items_for_images(index, range(3))
    broken = folder / str(index.images["file_name"][1])
    broken.write_bytes(b"not an image")
    model = load_model("alexnet", WeightsFile(alexnet_file))
    first = {
        p.item.image_row: p
        for p in predict(model, Dataset(index, folder), items, RunOptions(engine=ENGINE))
    }
    assert first[1].output is None and "not an image" in first[1].error
    assert first[0].output is not None and first[2].output is not None
    # what is cached is not asked again: an engine that cannot even connect is not called
    unreachable = RayEngine(address="ray://127.0.0.1:1")
    again = list(
        predict(model, Dataset(index, folder), [items[0], items[2]], RunOptions(engine=unreachable))
    )
    assert [p.item.image_row for p in again] == [0, 2]
    for p in again:
        assert np.allclose(p.output[1], first[p.item.image_row].output[1])


def test_unreachable_cluster_is_one_line(monkeypatch):
    from explorer.inference import ray_engine

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(
        ray, "init", lambda **kw: (_ for _ in ()).throw(ConnectionError("no GCS at 10.0.0.9:6379"))
    )
    with pytest.raises(ExplorerError, match="cannot reach the Ray cluster at 10.0.0.9:6379"):
        ray_engine.connect("10.0.0.9:6379")
