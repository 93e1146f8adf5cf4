"""Models: the registry's names, honest weights through the real loading path, devices."""

from __future__ import annotations

import pytest
import torch
import torchvision

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.coco.labels import (
    VOC_NAMES,
)
from explorer.errors import ExplorerError, WeightsError
from explorer.inference import classification
from explorer.inference.options import RunOptions
from explorer.models import (
    UNTRAINED,
    Published,
    WeightsFile,
    choose_device,
    create_model,
    list_models,
    load_model,
)


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


def test_weights_from_a_saved_state_dict(alexnet_file, mbv3_file):
    m = load_model("alexnet", WeightsFile(alexnet_file))
    ref = torchvision.models.alexnet()
    ref.load_state_dict(torch.load(alexnet_file, weights_only=True))
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(m.module(x), ref.eval()(x))
    assert m.weights_label == "file alexnet.pth" and not m.untrained and len(m.class_names) == 1000
    seg = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file))
    assert seg.module.aux_classifier is None and seg.class_names == list(VOC_NAMES)


def test_mismatched_and_bad_files_give_clear_errors(alexnet_file, tmp_path):
    with pytest.raises(
        WeightsError,
        match=r"does not fit deeplabv3-mobilenet-v3-large; missing keys: .*"
        r"unexpected keys: features\.0\.weight",
    ):
        load_model("deeplabv3-mobilenet-v3-large", WeightsFile(alexnet_file))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a loadable weights file"):
        load_model("alexnet", WeightsFile(tmp_path / "junk.pth"))
    with pytest.raises(WeightsError, match="weights file not found"):
        load_model("alexnet", WeightsFile(tmp_path / "none.pth"))


def test_weights_only_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError) as e:
        load_model("alexnet", WeightsFile(tmp_path / "evil.pth"))
    # one line, and no advice to turn the safety off (PyTorch's own message advises it)
    assert str(e.value) == (
        f"{tmp_path / 'evil.pth'}: not a plain weights file: it holds Python objects that are "
        "not tensors (refused: loading it could run code)"
    )


def test_absent_published_weights_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(WeightsError) as e:
        load_model("deeplabv3-resnet50", Published(download=False))
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
    m = load_model("alexnet", Published(download=False))
    assert m.weights_label == "published AlexNet_Weights.IMAGENET1K_V1"


def test_untrained_is_labelled():
    m = load_model("alexnet", UNTRAINED)
    assert m.untrained and "UNTRAINED" in m.display_name


def test_device_choice():
    assert choose_device("auto") in ("cpu", "cuda", "mps") and choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ExplorerError, match="no CUDA GPU"):
            choose_device("cuda")


def test_untrained_dataset_models_take_the_dataset_classes(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    seg = load_model(
        "smp-deeplabv3", UNTRAINED, encoder="resnet18", dataset_categories=index.categories
    )
    assert seg.class_names == ["background"] + [c["name"] for c in index.categories]
    cls = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    table = classification.classification_table(
        cls, Dataset(index, sample_root / "val2017"), True, [0], RunOptions(workers=0)
    )
    assert set(table["mapped_category"]) <= {c["name"] for c in index.categories}
    assert table["untrained"].all()
    scores = classification.classification_scores(cls, table, index.categories)
    acc = classification.accuracy_per_category(cls, table, index.categories)
    assert acc.total.sum() == scores["objects"] == len(table)
    assert acc.right.sum() == round(scores["top1"] * scores["objects"])
