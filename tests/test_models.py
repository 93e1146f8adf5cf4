"""Models: registry, weights through the real loading path, preprocessing, runner, cache, metrics,
label maps."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
import torchvision

from explorer.coco import labels as label_maps
from explorer.coco import masks, open_index
from explorer.coco.labels import (
    VOC_COCO_IDS,
    VOC_COCO_NAMES,
    VOC_NAMES,
    coco_name_of_label,
    imagenet_to_coco,
)
from explorer.errors import ExplorerError
from explorer.inference import cache, classification, segmentation
from explorer.inference import runner as infer
from explorer.inference.metrics import confusion_matrix, segmentation_scores
from explorer.models import (
    UNTRAINED,
    WeightsError,
    choose_device,
    create_model,
    list_models,
    load_model,
)
from explorer.models.registry import get_spec, published_weights
from tests.helpers import pycoco, tiny


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def mbv3_file(tmp_path_factory):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("w") / "mbv3.pth"
    m = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    )
    torch.save(m.state_dict(), path)
    return path


def test_registry_names_and_errors():
    assert {
        "alexnet",
        "alexnet-classic",
        "deeplabv3-resnet50",
        "deeplabv3-resnet101",
        "deeplabv3-mobilenet-v3-large",
        "smp-deeplabv3",
        "smp-deeplabv3plus",
    } <= set(list_models())
    with pytest.raises(
        ExplorerError, match="unknown model 'resnet'; valid names: alexnet, alexnet-classic"
    ):
        create_model("resnet")
    with pytest.raises(ExplorerError, match="give num_classes"):
        create_model("alexnet-classic")
    with pytest.raises(ExplorerError, match="encoder 'nope' not usable"):
        create_model("smp-deeplabv3", num_classes=3, encoder="nope")
    assert sum(p.numel() for p in create_model("alexnet").parameters()) == 61_100_840


def test_alexnet_classic_layout():
    m = create_model("alexnet-classic", num_classes=7)
    assert m(torch.zeros(2, 3, 227, 227)).shape == (2, 7)
    assert m[:13](torch.zeros(1, 3, 227, 227)).shape == (1, 256, 6, 6)


@pytest.mark.parametrize("name", ["alexnet", "deeplabv3-resnet50", "deeplabv3-mobilenet-v3-large"])
def test_preprocessing_equals_the_weights_transforms(name):
    spec = get_spec(name)
    reference = published_weights(spec).transforms()
    for shape in [(3, 375, 500), (3, 640, 427), (3, 100, 100)]:
        x = torch.randint(0, 256, shape, dtype=torch.uint8)
        assert torch.equal(spec.preprocess(x), reference(x))
        assert tuple(spec.preprocess(x).shape[-2:]) == spec.preprocess.output_size(*shape[1:])


def test_smp_preprocessing_is_divisible_by_16():
    p = get_spec("smp-deeplabv3").preprocess
    for h, w in [(375, 500), (192, 256), (613, 411)]:
        oh, ow = p.output_size(h, w)
        assert oh % 16 == 0 and ow % 16 == 0
        assert tuple(p(torch.zeros(3, h, w, dtype=torch.uint8)).shape[-2:]) == (oh, ow)


def test_weights_from_a_saved_state_dict(alexnet_file, mbv3_file):
    m = load_model("alexnet", str(alexnet_file))
    ref = torchvision.models.alexnet()
    ref.load_state_dict(torch.load(alexnet_file, weights_only=True))
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(m.module(x), ref.eval()(x))
    assert m.weights_label == "file alexnet.pth" and not m.untrained and len(m.class_names) == 1000
    seg = load_model("deeplabv3-mobilenet-v3-large", str(mbv3_file))
    assert seg.module.aux_classifier is None and seg.class_names == list(VOC_NAMES)


def test_mismatched_and_bad_files_give_clear_errors(alexnet_file, tmp_path):
    with pytest.raises(
        WeightsError,
        match=r"does not fit deeplabv3-mobilenet-v3-large; missing keys: .*"
        r"unexpected keys: features\.0\.weight",
    ):
        load_model("deeplabv3-mobilenet-v3-large", str(alexnet_file))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a loadable weights file"):
        load_model("alexnet", str(tmp_path / "junk.pth"))
    with pytest.raises(WeightsError, match="weights file not found"):
        load_model("alexnet", str(tmp_path / "none.pth"))


def test_weights_only_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="not a loadable weights file"):
        load_model("alexnet", str(tmp_path / "evil.pth"))


def test_absent_published_weights_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(WeightsError) as e:
        load_model("deeplabv3-resnet50", download=False)
    assert "deeplabv3_resnet50_coco-cd0a2569.pth" in str(e.value) and str(tmp_path / "th") in str(
        e.value
    )
    with pytest.raises(WeightsError, match="has no published weights"):
        load_model("alexnet-classic")


def test_published_weights_found_in_torch_home(monkeypatch, tmp_path, alexnet_file):
    """A file put where the message says is loaded through torchvision's weights API names."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    dest = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(alexnet_file.read_bytes())
    m = load_model("alexnet", download=False)
    assert m.weights_label == "published AlexNet_Weights.IMAGENET1K_V1"


def test_untrained_is_labelled():
    m = load_model("alexnet", UNTRAINED)
    assert m.untrained and "UNTRAINED" in m.display_name


def test_device_choice():
    assert choose_device("auto") in ("cpu", "cuda", "mps") and choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ExplorerError, match="no CUDA GPU"):
            choose_device("cuda")


def test_label_maps():
    assert [coco_name_of_label("voc", i + 1, VOC_NAMES) for i in range(20)] == list(VOC_COCO_NAMES)
    ref = pycoco(tiny("val2017")[0])
    names = {c["id"]: c["name"] for c in ref.dataset["categories"]}
    assert [names[i] for i in VOC_COCO_IDS] == list(
        VOC_COCO_NAMES
    )  # every VOC class is a COCO category
    imagenet = published_weights(get_spec("alexnet")).meta["categories"]
    doc = json.loads((label_maps._DATA / "imagenet_to_coco.json").read_text())
    for e in doc["map"]:
        assert imagenet[e["index"]] == e["imagenet"] and e["coco"] in names.values()
    m = imagenet_to_coco()
    assert m[imagenet.index("Chihuahua")] == "dog" and m[imagenet.index("tabby")] == "cat"
    assert imagenet.index("tench") not in m  # a fish: no counterpart
    assert coco_name_of_label("voc", 0, VOC_NAMES) is None  # background


def test_confusion_matrix_and_scores_by_hand():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(target, pred, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    s = segmentation_scores(conf)
    assert s["pixel_acc"] == pytest.approx(4 / 5)
    assert s["per_class_iou"].tolist() == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert s["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    s = segmentation_scores(confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3))
    assert s["miou"] == 1.0 and np.isnan(s["per_class_iou"][1])  # absent classes left out


@pytest.fixture(scope="module")
def real():
    ann, images = tiny("val2017")
    return open_index(ann), images


def test_runner_batches_equal_single_images(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", str(mbv3_file))
    rows = list(range(6))
    batched = {
        it.image_row: out
        for it, out, _ in infer.run(
            model, index, images, infer.items_for_images(index, rows), batch_size=4
        )
    }
    for r in rows:
        ((_, single, _),) = infer.run(
            model, index, images, infer.items_for_images(index, [r]), batch_size=1
        )
        assert np.array_equal(single[0], batched[r][0])
        assert single[0].shape == (index.images["height"][r], index.images["width"][r])


def test_gpu_decode_path_matches_on_cpu(real, alexnet_file):
    """The JPEG-bytes path (used on CUDA) gives the same inputs as the PIL path (run on the CPU
    here)."""
    index, images = real
    model = load_model("alexnet", str(alexnet_file))
    items = infer.items_for_images(index, range(3))
    paths = [str(images / index.images["file_name"][i]) for i in range(3)]
    sizes = [(int(index.images["width"][i]), int(index.images["height"][i])) for i in range(3)]
    pil = infer._Inputs(items, paths, sizes, model.preprocess)
    raw = infer._Inputs(items, paths, sizes, model.preprocess, raw_bytes=True)
    batch, kept, bad = infer._decode_on_gpu(
        [raw[i][0] for i in range(3)], [0, 1, 2], sizes, model.preprocess, "cpu", pil
    )
    assert kept == [0, 1, 2] and not bad
    for i in range(3):
        assert (
            pil[i][0] - batch[i]
        ).abs().max() < 0.1  # libjpeg versions may differ by a few levels
    corrupt = torch.frombuffer(bytearray(b"\xff\xd8 not a jpeg"), dtype=torch.uint8)
    batch, kept, bad = infer._decode_on_gpu(
        [corrupt, raw[1][0]], [0, 1], sizes, model.preprocess, "cpu", pil
    )
    assert kept == [0, 1] and not bad  # the bad bytes fell back to the (good) file on disk


def test_cache_answers_without_running_the_model(real, alexnet_file, monkeypatch):
    index, images = real
    model = load_model("alexnet", str(alexnet_file))
    first = classification.classification_table(
        model, index, images, crops=True, image_rows=[0, 1], workers=0
    )
    monkeypatch.setattr(cache, "run", lambda *a, **k: pytest.fail("the model ran again"))
    again = classification.classification_table(
        model, index, images, crops=True, image_rows=[0, 1], workers=0
    )
    assert first.equals(again) and len(first) == sum(
        not index.annotations["iscrowd"][a] for r in (0, 1) for a in index.annotation_rows(r)
    )


def test_cancel_stops_a_run(real, alexnet_file):
    index, images = real
    model = load_model("alexnet", str(alexnet_file))
    stop = threading.Event()
    stop.set()
    with pytest.raises(infer.Cancelled):
        list(
            infer.run(
                model,
                index,
                images,
                infer.items_for_images(index, range(4)),
                workers=0,
                cancel=stop,
            )
        )


def test_segmentation_results_round_trip_through_pycocotools(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", str(mbv3_file))
    ref = pycoco(tiny("val2017")[0])
    rows = [0, 1, 2]
    results = []
    labels_of = {}
    for it, (labels, scores), _ in cache.predict(
        model, index, images, infer.items_for_images(index, rows)
    ):
        results += segmentation.coco_results(model, index, it.image_row, labels, scores)
        labels_of[int(index.images["id"][it.image_row])] = labels
    loaded = ref.loadRes(results) if results else None
    for r in results:
        label = VOC_COCO_IDS.index(r["category_id"]) + 1
        m = loaded.annToMask(
            next(
                a
                for a in loaded.anns.values()
                if a["image_id"] == r["image_id"] and a["category_id"] == r["category_id"]
            )
        )
        assert np.array_equal(m, labels_of[r["image_id"]] == label)


def test_evaluate_agrees_with_a_hand_count(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", str(mbv3_file))
    rows = [0, 1, 2, 3]
    ev = segmentation.evaluate_segmentation(model, index, images, rows, "voc")
    correct = total = 0
    for it, (labels, _), _ in cache.predict(
        model, index, images, infer.items_for_images(index, rows)
    ):
        target, _ = masks.semantic_mask(index, it.image_row, "voc")
        keep = target != 255
        correct += int((labels[keep] == target[keep]).sum())
        total += int(keep.sum())
    assert ev["images"] == 4 and ev["pixel_acc"] == pytest.approx(correct / total)
    assert set(ev["per_class_iou"]) == set(VOC_NAMES)


def test_untrained_dataset_models_take_the_dataset_classes(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    seg = load_model(
        "smp-deeplabv3", UNTRAINED, encoder="resnet18", dataset_categories=index.categories
    )
    assert seg.class_names == ["background"] + [c["name"] for c in index.categories]
    cls = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    table = classification.classification_table(
        cls, index, sample_root / "val2017", True, [0], workers=0
    )
    assert set(table["mapped_category"]) <= {c["name"] for c in index.categories}
    assert table["untrained"].all()
    scores = classification.classification_scores(cls, table, index.categories)
    acc = classification.accuracy_per_category(cls, table, index.categories)
    assert acc.total.sum() == scores["objects"] == len(table)
    assert acc.right.sum() == round(scores["top1"] * scores["objects"])


def test_items_carry_ids_and_keep_their_cache_keys(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    (whole,) = infer.items_for_images(index, [0])
    assert whole.key == f"img:{int(index.images['id'][0])}" and whole.annotation_id is None
    crops = infer.items_for_crops(index, [0])
    anns = index.annotations
    assert [it.annotation_id for it in crops] == [
        int(anns["id"][a]) for a in index.annotation_rows(0) if not anns["iscrowd"][a]
    ]
    assert [it.key for it in crops] == [f"ann:{it.annotation_id}" for it in crops]


def test_cuda_out_of_memory_halves_the_batch(monkeypatch):
    """Simulated on the CPU: a forward of more than 2 images runs out of memory."""
    model = load_model("alexnet", UNTRAINED)
    real = model.module
    seen = []

    def forward(x):
        seen.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    model.module = forward
    x = torch.randn(8, 3, 224, 224)
    outs = infer._forward(model, x, [(224, 224)] * 8)
    assert len(outs) == 8 and seen == [8, 4, 2, 2, 4, 2, 2]
    with torch.inference_mode():
        np.testing.assert_allclose(
            outs[5], torch.softmax(real(x[5:6]), 1)[0].numpy(), rtol=1e-4, atol=1e-6
        )
