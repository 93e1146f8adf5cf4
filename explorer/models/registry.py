"""The model registry: one :class:`ModelSpec` record per model name.

A record says everything the rest of the package needs to know about a model: its task and
label space, how to build it, how to swap its head for a dataset's classes, which published
weights exist, how to preprocess its input and how to train it quickly. Nothing outside this
module branches on a model's name: it asks the record. :func:`register` adds a model (the tests
register a toy one); :func:`create_model` builds any of them with random weights.

Names are the ones users type (CLI ``--model``, the pages' pickers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from explorer.errors import ExplorerError
from explorer.models.preprocess import Preprocess
from explorer.types import LabelSpace, Task

if TYPE_CHECKING:
    from torch import nn

SMP_ENCODERS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0")

Builder = Callable[[int, "str | None", bool], "nn.Module"]
"""``build(num_classes, encoder, aux_loss)``: the architecture with random weights."""


@dataclass(frozen=True)
class QuickPreset:
    """The ``quick`` recipe: trains the embedded sample in minutes on two CPU cores.

    The numbers were measured (docs/BENCHMARKS.md); ``None`` leaves the task's default. The
    compute is sized so that a machine four times slower still fits most of it in
    ``time_budget``; where it does not, the trainer does the steps that fit with the schedule
    compressed onto them and says so (:mod:`explorer.training.plan`).
    """

    epochs: int
    batch_size: int
    lr: float
    image_size: int
    time_budget: float
    encoder: str | None = None

    def settings(self) -> dict[str, Any]:
        """The preset as TrainConfig fields (the unset ones left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name.

    Attributes:
        name: registry name.
        task: ``classify`` or ``segment``.
        label_space: ``imagenet``, ``voc`` or ``dataset`` (classes come with a trained checkpoint).
        description: one line for pickers and help.
        preprocess: resize / crop / normalisation.
        build: ``build(num_classes, encoder, aux_loss)``, random weights, no download.
        head_size: classes of the published (or classic) layout: 1000 for ImageNet, 21 for VOC.
        weights_enum: ``module:Enum.MEMBER`` of torchvision's published weights, or None.
        reset_head: ``reset_head(model, n)`` replaces the last layer for ``n`` classes; needed
            to fine-tune from published weights.
        freeze_features: ``freeze_features(model)`` stops the gradients of the feature layers
            (None: the model has no such option).
        encoders: the encoders offered for models built around a chosen encoder (empty: none).
        default_encoder: the encoder used when none is given.
        trainable: offered by ``python -m explorer train`` and the Train page.
        quick: the ``quick`` training preset, or None (the task's defaults).
        min_input_size: the smallest input side the model takes (smaller inputs vanish in its
            pools), or None.
        pretrained_note: what a run that asks for published weights writes in its notes: after
            loading them (models with ``weights_enum``), or instead (models without).
    """

    name: str
    task: Task
    label_space: LabelSpace
    description: str
    preprocess: Preprocess
    build: Builder
    head_size: int
    weights_enum: str | None = None
    reset_head: Callable[[nn.Module, int], None] | None = None
    freeze_features: Callable[[nn.Module], None] | None = None
    encoders: tuple[str, ...] = ()
    default_encoder: str | None = None
    trainable: bool = True
    quick: QuickPreset | None = None
    min_input_size: int | None = None
    pretrained_note: str | None = None


_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry; raises ExplorerError when the name is taken."""
    if spec.name in _SPECS:
        raise ExplorerError(f"model {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (tests clean up their toy models)."""
    _SPECS.pop(name, None)


def list_models(task: Task | None = None) -> list[str]:
    """Registered names in registration order, all or one task's."""
    return [n for n, s in _SPECS.items() if task is None or s.task == task]


def get_spec(name: str) -> ModelSpec:
    """The record of a registry name; raises ExplorerError listing the valid names."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ExplorerError(f"unknown model {name!r}; valid names: {', '.join(_SPECS)}") from None


def published_weights(spec: ModelSpec):
    """torchvision's weights enum member of a spec (or None)."""
    if spec.weights_enum is None:
        return None
    import importlib

    module, member = spec.weights_enum.split(":")
    enum_name, value = member.split(".")
    return getattr(getattr(importlib.import_module(module), enum_name), value)


def create_model(
    name: str, num_classes: int | None = None, encoder: str | None = None, aux_loss: bool = True
):
    """Build an architecture with random weights (no download).

    Args:
        name: a registry name (see :func:`list_models`).
        num_classes: output classes; default: the record's ``head_size`` (1000 ImageNet, 21 VOC);
            required for models whose classes come from a dataset.
        encoder: for models built around an encoder: one of the record's ``encoders`` or any
            encoder their library knows; default the record's ``default_encoder``.
        aux_loss: torchvision DeepLabV3's auxiliary head (the published files include it).

    Raises:
        ExplorerError: unknown name, or a dataset-class model without ``num_classes``.
    """
    spec = get_spec(name)
    if spec.label_space == "dataset" and not num_classes:
        raise ExplorerError(
            f"{name} learns the classes of a dataset: give num_classes (or a trained checkpoint)"
        )
    return spec.build(num_classes or spec.head_size, encoder or spec.default_encoder, aux_loss)


# ---------------------------------------------------------------- builders and heads


def _alexnet(num_classes: int, encoder: str | None, aux_loss: bool):
    from torchvision.models import alexnet

    return alexnet(weights=None, num_classes=num_classes)


def _alexnet_classic(num_classes: int, encoder: str | None, aux_loss: bool):
    """Krizhevsky et al. 2012 as in the classic layer table (LRN left out, as most tables do).

    Its pools round up (``ceil_mode``): at 227 px every pool divides exactly, so the table is the
    classic one, and small inputs (down to 39 px) keep a last row to pool instead of vanishing.
    """
    from torch import nn

    from explorer.models._layers import FlattenPooled

    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(96, 256, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(256, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        FlattenPooled(6),
        nn.Linear(9216, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )


def _torchvision_deeplabv3(builder: str, num_classes: int, encoder: str | None, aux_loss: bool):
    from torchvision.models import segmentation

    return getattr(segmentation, builder)(
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss
    )


def _smp(arch: str, name: str, num_classes: int, encoder: str | None, aux_loss: bool):
    import segmentation_models_pytorch as smp

    try:
        return getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=num_classes)
    except (KeyError, ValueError) as e:
        raise ExplorerError(
            f"{name}: encoder {encoder!r} not usable ({e}); try one of {', '.join(SMP_ENCODERS)}"
        ) from None


def _new_linear_head(layers, n: int) -> None:
    from torch import nn

    layers[-1] = nn.Linear(layers[-1].in_features, n)


def _new_conv_head(layers, n: int) -> None:
    from torch import nn

    last = layers[-1]
    layers[-1] = nn.Conv2d(last.in_channels, n, 1)


def _reset_alexnet_head(model, n: int) -> None:
    _new_linear_head(model.classifier, n)


def _reset_deeplabv3_head(model, n: int) -> None:
    _new_conv_head(model.classifier, n)
    model.aux_classifier = None  # its 21-class head would need a second loss; training skips it


def _reset_smp_head(model, n: int) -> None:
    from torch import nn

    old = model.segmentation_head[0]
    model.segmentation_head[0] = nn.Conv2d(old.in_channels, n, old.kernel_size, padding=old.padding)


def _freeze_alexnet_features(model) -> None:
    model.features.requires_grad_(False)


# ---------------------------------------------------------------- the built-in models

_IMAGENET = Preprocess(resize=256, crop=224)
_IMAGENET_227 = Preprocess(resize=256, crop=227)
_SEG = Preprocess(resize=520, crop=None)
_SMP = Preprocess(resize=320, crop=None, multiple_of=16)
_SMP_QUICK = QuickPreset(
    epochs=8, batch_size=16, lr=2e-3, image_size=80, time_budget=420, encoder="resnet18"
)
_VOC_NOTE = "backbone and head from torchvision's COCO weights"
_SMP_NOTE = (
    "smp encoders download their ImageNet weights from the Hugging Face hub; "
    "not attempted offline: trained from scratch"
)


def _torchvision_deeplabv3_spec(name: str, builder: str, enum: str, backbone: str, quick=None):
    return ModelSpec(
        name=name,
        task="segment",
        label_space="voc",
        description=f"torchvision DeepLabV3 {backbone}, COCO with VOC labels (21 classes)",
        preprocess=_SEG,
        build=partial(_torchvision_deeplabv3, builder),
        head_size=21,
        weights_enum=f"torchvision.models.segmentation:{enum}.COCO_WITH_VOC_LABELS_V1",
        reset_head=_reset_deeplabv3_head,
        quick=quick,
        pretrained_note=_VOC_NOTE,
    )


def _smp_spec(name: str, arch: str, label: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        task="segment",
        label_space="dataset",
        description=f"segmentation-models-pytorch {label} (choose an encoder); trained in-app",
        preprocess=_SMP,
        build=partial(_smp, arch, name),
        head_size=21,
        reset_head=_reset_smp_head,
        encoders=SMP_ENCODERS,
        default_encoder="resnet34",
        quick=_SMP_QUICK,
        pretrained_note=_SMP_NOTE,
    )


register(
    ModelSpec(
        name="alexnet",
        task="classify",
        label_space="imagenet",
        description="torchvision AlexNet, ImageNet-1k weights (61.1M parameters)",
        preprocess=_IMAGENET,
        build=_alexnet,
        head_size=1000,
        weights_enum="torchvision.models:AlexNet_Weights.IMAGENET1K_V1",
        reset_head=_reset_alexnet_head,
        freeze_features=_freeze_alexnet_features,
        quick=QuickPreset(epochs=6, batch_size=64, lr=3e-4, image_size=224, time_budget=230),
        pretrained_note="fine-tuned from torchvision's ImageNet weights",
    )
)
register(
    ModelSpec(
        name="alexnet-classic",
        task="classify",
        label_space="dataset",
        description="the original 2012 AlexNet layout, 227x227 input (smaller ones pooled to "
        "its 6x6); no published weights: train it in-app",
        preprocess=_IMAGENET_227,
        build=_alexnet_classic,
        head_size=1000,
        reset_head=_new_linear_head,  # the model is one Sequential: its last layer is the head
        quick=QuickPreset(epochs=4, batch_size=32, lr=1e-3, image_size=96, time_budget=230),
        min_input_size=39,  # below it the third max pool has nothing left to pool
    )
)
register(
    _torchvision_deeplabv3_spec(
        "deeplabv3-resnet50", "deeplabv3_resnet50", "DeepLabV3_ResNet50_Weights", "ResNet-50"
    )
)
register(
    _torchvision_deeplabv3_spec(
        "deeplabv3-resnet101", "deeplabv3_resnet101", "DeepLabV3_ResNet101_Weights", "ResNet-101"
    )
)
register(
    _torchvision_deeplabv3_spec(
        "deeplabv3-mobilenet-v3-large",
        "deeplabv3_mobilenet_v3_large",
        "DeepLabV3_MobileNet_V3_Large_Weights",
        "MobileNetV3-Large",
        quick=QuickPreset(epochs=16, batch_size=16, lr=1e-3, image_size=160, time_budget=420),
    )
)
register(_smp_spec("smp-deeplabv3", "DeepLabV3", "DeepLabV3"))
register(_smp_spec("smp-deeplabv3plus", "DeepLabV3Plus", "DeepLabV3+"))
