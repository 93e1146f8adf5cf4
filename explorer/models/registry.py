"""The model registry: names -> architectures, label spaces, published weights, preprocessing.

``create_model(name)`` builds an architecture with random weights; ``explorer.models.weights``
fills it. Names are the ones users type (CLI ``--model``, the pages' pickers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from explorer.errors import ExplorerError
from explorer.models.preprocess import Preprocess

SMP_ENCODERS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name.

    Attributes:
        name: registry name.
        task: ``classify`` or ``segment``.
        label_space: ``imagenet``, ``voc`` or ``dataset`` (classes come with a trained checkpoint).
        weights_enum: ``module:Enum.MEMBER`` of torchvision's published weights, or None.
        preprocess: resize / crop / normalisation.
        description: one line for pickers and help.
    """

    name: str
    task: str
    label_space: str
    weights_enum: str | None
    preprocess: Preprocess
    description: str


_IMAGENET = Preprocess(resize=256, crop=224)
_IMAGENET_227 = Preprocess(resize=256, crop=227)
_SEG = Preprocess(resize=520, crop=None)
_SMP = Preprocess(resize=320, crop=None, multiple_of=16)

SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec(
            "alexnet",
            "classify",
            "imagenet",
            "torchvision.models:AlexNet_Weights.IMAGENET1K_V1",
            _IMAGENET,
            "torchvision AlexNet, ImageNet-1k weights (61.1M parameters)",
        ),
        ModelSpec(
            "alexnet-classic",
            "classify",
            "dataset",
            None,
            _IMAGENET_227,
            "the original 2012 AlexNet layout, 227x227 input; no published weights: train it in-app",
        ),
        ModelSpec(
            "deeplabv3-resnet50",
            "segment",
            "voc",
            "torchvision.models.segmentation:DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1",
            _SEG,
            "torchvision DeepLabV3 ResNet-50, COCO with VOC labels (21 classes)",
        ),
        ModelSpec(
            "deeplabv3-resnet101",
            "segment",
            "voc",
            "torchvision.models.segmentation:DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1",
            _SEG,
            "torchvision DeepLabV3 ResNet-101, COCO with VOC labels (21 classes)",
        ),
        ModelSpec(
            "deeplabv3-mobilenet-v3-large",
            "segment",
            "voc",
            "torchvision.models.segmentation:DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
            _SEG,
            "torchvision DeepLabV3 MobileNetV3-Large, COCO with VOC labels (21 classes)",
        ),
        ModelSpec(
            "smp-deeplabv3",
            "segment",
            "dataset",
            None,
            _SMP,
            "segmentation-models-pytorch DeepLabV3 (choose an encoder); trained in-app",
        ),
        ModelSpec(
            "smp-deeplabv3plus",
            "segment",
            "dataset",
            None,
            _SMP,
            "segmentation-models-pytorch DeepLabV3+ (choose an encoder); trained in-app",
        ),
    )
}


def list_models(task: str | None = None) -> list[str]:
    return [n for n, s in SPECS.items() if task is None or s.task == task]


def get_spec(name: str) -> ModelSpec:
    """The spec of a registry name; raises ExplorerError listing the valid names."""
    try:
        return SPECS[name]
    except KeyError:
        raise ExplorerError(f"unknown model {name!r}; valid names: {', '.join(SPECS)}") from None


def published_weights(spec: ModelSpec):
    """torchvision's weights enum member of a spec (or None)."""
    if spec.weights_enum is None:
        return None
    import importlib

    module, member = spec.weights_enum.split(":")
    enum_name, value = member.split(".")
    return getattr(getattr(importlib.import_module(module), enum_name), value)


def create_model(
    name: str, num_classes: int | None = None, encoder: str = "resnet34", aux_loss: bool = True
):
    """Build an architecture with random weights (no download).

    Args:
        name: a registry name (see :func:`list_models`).
        num_classes: output classes; default 1000 (ImageNet) or 21 (VOC); required for
            models whose classes come from a dataset.
        encoder: smp encoder (``smp-*`` only): one of ``SMP_ENCODERS`` or any smp encoder name.
        aux_loss: torchvision DeepLabV3's auxiliary head (the published files include it).

    Raises:
        ExplorerError: unknown name, or a dataset-class model without ``num_classes``.
    """
    spec = get_spec(name)
    builders: dict[str, Callable] = {"alexnet": _alexnet, "alexnet-classic": _alexnet_classic}
    if spec.label_space == "dataset" and not num_classes:
        raise ExplorerError(
            f"{name} learns the classes of a dataset: give num_classes (or a trained checkpoint)"
        )
    if name in builders:
        return builders[name](num_classes or 1000)
    if name.startswith("deeplabv3-"):
        from torchvision.models import segmentation as seg

        fn = {
            "deeplabv3-resnet50": seg.deeplabv3_resnet50,
            "deeplabv3-resnet101": seg.deeplabv3_resnet101,
            "deeplabv3-mobilenet-v3-large": seg.deeplabv3_mobilenet_v3_large,
        }[name]
        return fn(
            weights=None, weights_backbone=None, num_classes=num_classes or 21, aux_loss=aux_loss
        )
    import segmentation_models_pytorch as smp

    arch = smp.DeepLabV3 if name == "smp-deeplabv3" else smp.DeepLabV3Plus
    try:
        return arch(encoder_name=encoder, encoder_weights=None, classes=num_classes)
    except (KeyError, ValueError) as e:
        raise ExplorerError(
            f"{name}: encoder {encoder!r} not usable ({e}); try one of {', '.join(SMP_ENCODERS)}"
        ) from None


def _alexnet(num_classes: int):
    from torchvision.models import alexnet

    return alexnet(weights=None, num_classes=num_classes)


def _alexnet_classic(num_classes: int):
    """Krizhevsky et al. 2012 as in the classic layer table (LRN left out, as most tables do)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(9216, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )
