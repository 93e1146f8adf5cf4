"""Weights, honestly: published (torchvision's weights API), a local file, a training run, or
explicitly untrained. Never a silent fallback to random weights.

Published files live in torch hub's folder: ``$TORCH_HOME/hub/checkpoints`` when ``TORCH_HOME``
is set, else ``<cache>/torch/hub/checkpoints``. Every file is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, get_args

from explorer.coco.labels import VOC_NAMES, dataset_label_map
from explorer.errors import WeightsError
from explorer.models.preprocess import Preprocess
from explorer.models.quality import Quality, checkpoint_quality, untrained
from explorer.models.registry import (
    ModelSpec,
    create_model,
    get_spec,
    list_models,
    published_weights,
)
from explorer.models.tasks import task_kind
from explorer.paths import NotARegularFile, cache_dir, open_regular
from explorer.types import Category, LabelSpace

if TYPE_CHECKING:
    from torch import nn

CHECKPOINT_FORMAT = "coco-explorer-checkpoint/1"


class Checkpoint(TypedDict):
    """A COCO Explorer checkpoint (``best.pt``, ``last.pt``): the weights and everything a
    loader needs to read the model's outputs honestly; ``last.pt`` adds the optimiser."""

    format: str
    model: str
    encoder: str | None
    task: str
    label_space: str
    class_names: list[str]
    category_ids: list[int | None]
    preprocess: dict[str, Any]
    state_dict: dict[str, Any]
    epoch: int
    step: int
    best: float
    best_epoch: int
    optimizer: NotRequired[dict[str, Any]]
    # last.pt of a run stopped mid-epoch: how far into the epoch it got (batch, the epoch's
    # losses so far, the random generator's state), so that a resume continues the same epoch
    within_epoch: NotRequired[dict[str, Any]]


@dataclass(frozen=True)
class Published:
    """The model's published weights (torchvision's), downloaded into torch hub's folder when
    absent and ``download`` allows it."""

    download: bool = True


@dataclass(frozen=True)
class Untrained:
    """Random weights, asked for by name (seeded: the same every time), labelled UNTRAINED
    wherever a model's outputs are shown."""


@dataclass(frozen=True)
class WeightsFile:
    """A state_dict file, a COCO Explorer checkpoint, or a training run folder (its best.pt,
    else its last.pt)."""

    path: Path


WeightsChoice = Published | Untrained | WeightsFile
PUBLISHED = Published()
UNTRAINED = Untrained()
UNTRAINED_WORD = "untrained"
"""What a user types for :class:`Untrained` (``--weights untrained``)."""


def weights_choice(text: str | Path | None) -> WeightsChoice:
    """The choice a user's words name: nothing → published, ``untrained`` → random weights,
    anything else a weights path (a CLI ``--weights``, the app's picker)."""
    if text is None or str(text) == "":
        return PUBLISHED
    if str(text) == UNTRAINED_WORD:
        return UNTRAINED
    return WeightsFile(Path(text))


@dataclass
class LoadedModel:
    """A model ready for inference, with everything its outputs need to be read honestly.

    Attributes:
        name: registry name. spec: its spec. module: the torch module (eval mode, on ``device``).
        class_names: one name per output label. label_space: imagenet / voc / dataset.
        weights_label: what a person reads ("published ...", "file ...", "untrained (random init)").
        weights_key: a fingerprint of the weights, for prediction caches.
        untrained: True when the weights are random (asked for explicitly).
        category_ids: for dataset label spaces, the dataset category id of each label (None for
            background).
        features: the module returns a classifier's penultimate features, not its logits
            (:func:`explorer.models.features.feature_model`).
        measured: what its checkpoint records of its validation score (None: no checkpoint);
            read it through :attr:`quality`.
    """

    name: str
    spec: ModelSpec
    module: nn.Module
    device: str
    class_names: list[str]
    label_space: str
    weights_label: str
    weights_key: str
    untrained: bool
    preprocess: Preprocess
    category_ids: list[int | None] = field(default_factory=list)
    encoder: str | None = None
    features: bool = False  # outputs are penultimate-layer features (models.features)
    measured: Quality | None = None

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def quality(self) -> Quality:
        """Its own validation quality: measured by its training run, untrained, or not
        measured (:mod:`explorer.models.quality`)."""
        if self.untrained:
            return untrained(self.task)
        return self.measured or checkpoint_quality(self.task, None)

    @property
    def display_name(self) -> str:
        return f"{self.name} [{'UNTRAINED' if self.untrained else self.weights_label}]"

    def category_of_label(self, categories: list[Category]) -> list[int | None]:
        """For each of the model's labels, the dataset category id it stands for (matched by
        name through its label space), or None (no counterpart, or background)."""
        return dataset_label_map(self.label_space, self.class_names, categories)


def hub_dir() -> Path:
    """torch hub's folder: ``$TORCH_HOME/hub`` when set, else inside the cache directory.

    Resolved on every call (not with ``torch.hub.set_dir``, which would pin it for the process)."""
    home = os.environ.get("TORCH_HOME")
    return Path(home).expanduser() / "hub" if home else cache_dir("torch", "hub")


def published_file(spec: ModelSpec) -> tuple[str, Path]:
    """(download URL, local path) of a spec's published weights."""
    w = published_weights(spec)
    return w.url, hub_dir() / "checkpoints" / w.url.rsplit("/", 1)[-1]


def published_here(name: str) -> bool:
    """True when a model has published weights and their file is on this machine (loading them
    needs no network)."""
    spec = get_spec(name)
    return spec.weights_enum is not None and published_file(spec)[1].is_file()


def _published_state_dict(spec: ModelSpec, download: bool = True) -> dict:
    import torch

    url, path = published_file(spec)
    if not path.is_file():
        if not download:
            raise WeightsError(f"{spec.name}: published weights {path.name} are not at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=None, progress=False)
        except Exception as e:  # noqa: BLE001 - any network failure means the same to the user
            reason = getattr(e, "reason", None) or e.__class__.__name__
            raise WeightsError(
                f"{spec.name}: published weights {path.name} are not here and could not be "
                f"downloaded ({reason}). Download {url} and put it at {path}, or pass --weights "
                f"FILE, or train a model on your data (python -m explorer train, or the Train "
                f"page)."
            ) from None
        finally:
            socket.setdefaulttimeout(old)
    return _torch_load(path)


def _torch_load(path: Path) -> dict:
    """A weights file read with ``torch.load(weights_only=True)``, opened only when it is a
    regular file (a pipe would block the reader forever).

    Raises:
        WeightsError: absent, not a regular file, damaged, or holding Python objects (refused).
    """
    import pickle
    import struct

    import torch

    try:
        with open_regular(path) as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except NotARegularFile:
        raise WeightsError(f"{path}: not a regular file (a pipe, device or socket)") from None
    except IsADirectoryError:
        raise WeightsError(f"{path}: a folder without best.pt or last.pt") from None
    except pickle.UnpicklingError as e:
        raise _unpickling_error(path, str(e)) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError) as e:
        raise WeightsError(f"{path}: not a loadable weights file ({_first_line(e)})") from None
    except (AttributeError, struct.error) as e:  # a damaged file in the legacy format
        raise WeightsError(f"{path}: not a loadable weights file ({_first_line(e)})") from None


# what PyTorch's safe unpickler says of a file that names Python globals (functions, classes):
# loading it unsafely could run code
_NAMES_CODE = ("Unsupported global", "unsupported GLOBAL", "allowed global", "Can only build")


def _unpickling_error(path: Path, text: str) -> WeightsError:
    """The refusal of a file the safe unpickler did not read. PyTorch's own message (six
    lines) advises re-running with ``weights_only=False``, i.e. running the file's code: it is
    never passed on."""
    if any(words in text for words in _NAMES_CODE):
        return WeightsError(
            f"{path}: not a plain weights file: it holds Python objects that are not tensors "
            "(refused: loading it could run code)"
        )
    detail = text.split("WeightsUnpickler error:")[-1]
    lines = [x.strip() for x in detail.splitlines() if x.strip() and "weights_only" not in x]
    return WeightsError(
        f"{path}: not a loadable weights file ({lines[0][:200] if lines else 'damaged'})"
    )


def _first_line(e: BaseException | str) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else e.__class__.__name__


def file_key(path: Path) -> str:
    """A fingerprint of a weights file: size plus hashes of its head and tail (fast on 200 MB)."""
    st = path.stat()
    h = hashlib.sha1(str(st.st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return h.hexdigest()[:16]


def _fit(module, state: dict, source: str, name: str) -> None:
    """load_state_dict(strict) with an error that names missing, unexpected and misshapen keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshapen:

        def few(xs):
            return ", ".join(xs[:4]) + (f" (+{len(xs) - 4} more)" if len(xs) > 4 else "")

        parts = [
            f"missing keys: {few(missing)}" if missing else "",
            f"unexpected keys: {few(unexpected)}" if unexpected else "",
            f"shape mismatch: {few(misshapen)}" if misshapen else "",
        ]
        raise WeightsError(f"{source}: does not fit {name}; " + "; ".join(p for p in parts if p))
    module.load_state_dict(state, strict=True)


def resolve_weights_path(weights: str | Path) -> Path:
    """A weights argument that is a path: a file, or a training run folder (its best.pt)."""
    path = Path(weights).expanduser()
    if path.is_dir():
        for candidate in ("best.pt", "last.pt"):
            if (path / candidate).is_file():
                return path / candidate
        raise WeightsError(f"{path}: a folder without best.pt or last.pt")
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    return path


@dataclass(frozen=True)
class _Source:
    """Where a model's weights come from: what :func:`load_model` resolved its argument to.

    ``state`` is None for random weights; ``checkpoint`` is set for COCO Explorer checkpoints
    (which also carry the model name, classes and preprocessing).
    """

    state: dict | None
    checkpoint: dict | None
    label: str
    key: str

    @property
    def model(self) -> str:
        return (self.checkpoint or {}).get("model", "")


def load_model(
    name: str,
    weights: WeightsChoice = PUBLISHED,
    device: str = "cpu",
    encoder: str | None = None,
    dataset_categories: list[Category] | None = None,
) -> LoadedModel:
    """Build a registry model and fill its weights.

    Args:
        name: a registry name, or a path to a training checkpoint / run folder (its own name
            and classes are read from it).
        weights: :class:`Published` (by default), :class:`Untrained` (random init, labelled so
            everywhere) or a :class:`WeightsFile` (a state_dict, checkpoint or run folder).
        device: a resolved device (see ``explorer.models.device.choose_device``).
        encoder: the encoder of models built around one, given without a checkpoint.
        dataset_categories: the classes of an untrained dataset-class model (``alexnet-classic``,
            ``smp-*``): the dataset's categories (segmenters get a background class first).

    Raises:
        ExplorerError / WeightsError: unknown name, absent weights, or weights that do not fit.
    """
    if (
        isinstance(weights, Published)
        and name not in list_models()
        and Path(name).expanduser().exists()
    ):
        name, weights = "", WeightsFile(Path(name))  # a checkpoint given as the model
    source = _given_weights(name, weights)
    name = name or source.model
    if not name:
        given = weights.path if isinstance(weights, WeightsFile) else source.label
        raise WeightsError(f"{given}: cannot tell which model this is")
    spec = get_spec(name)
    if isinstance(weights, Published):
        source = _published(spec, weights.download)
    ckpt = source.checkpoint or {}
    encoder = ckpt.get("encoder") or encoder or spec.default_encoder
    class_names, category_ids = _labels(spec, source, dataset_categories)
    origin = str(weights.path) if isinstance(weights, WeightsFile) else source.label
    module = _filled_module(spec, source, len(class_names), encoder, origin)
    _to_device(module, device)
    return LoadedModel(
        name=name,
        spec=spec,
        module=module,
        device=device,
        class_names=class_names,
        label_space=ckpt.get("label_space", spec.label_space),
        weights_label=source.label,
        weights_key=source.key,
        untrained=isinstance(weights, Untrained),
        preprocess=Preprocess(**ckpt["preprocess"]) if ckpt.get("preprocess") else spec.preprocess,
        category_ids=category_ids,
        encoder=encoder if spec.encoders else None,
        measured=checkpoint_quality(spec.task, source.checkpoint),
    )


def _given_weights(name: str, weights: WeightsChoice) -> _Source:
    """Random weights, a weights file or a checkpoint (published ones are read later)."""
    if isinstance(weights, Untrained):
        return _Source(None, None, "untrained (random init)", "untrained:seed0")
    if isinstance(weights, Published):
        return _Source(None, None, "", "")
    path = resolve_weights_path(weights.path)
    loaded = _torch_load(path)
    key = f"file:{file_key(path)}"
    if isinstance(loaded, dict) and loaded.get("format") == CHECKPOINT_FORMAT:
        _check_checkpoint(path, loaded)
        if name and name != loaded["model"]:
            raise WeightsError(f"{path}: a {loaded['model']} checkpoint, not {name}")
        label = (
            f"trained: {path.parent.name}/{path.name}"
            if path.name in ("best.pt", "last.pt")
            else f"checkpoint {path.name}"
        )
        return _Source(loaded["state_dict"], loaded, label, key)
    if isinstance(loaded, dict) and loaded and all(hasattr(v, "shape") for v in loaded.values()):
        return _Source(loaded, None, f"file {path.name}", key)
    raise WeightsError(f"{path}: neither a state_dict nor a COCO Explorer checkpoint")


def _check_checkpoint(path: Path, ckpt: dict) -> None:
    """A COCO Explorer checkpoint's fields, each of the type a loader reads.

    Raises:
        WeightsError: a field is missing or of another type (one line naming it).
    """
    import torch

    def bad(key: str, what: str) -> WeightsError:
        return WeightsError(f"{path}: a damaged checkpoint: {key} {what}")

    for key in ("model", "state_dict", "class_names"):
        if key not in ckpt:
            raise bad(key, "is missing")
    if not isinstance(ckpt["model"], str):
        raise bad("model", "is not a name")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise bad("state_dict", "is not a table of named tensors")
    names = ckpt["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad("class_names", "is not a list of names")
    ids = ckpt.get("category_ids", [])
    if not isinstance(ids, list) or not all(
        i is None or (isinstance(i, int) and not isinstance(i, bool)) for i in ids
    ):
        raise bad("category_ids", "is not a list of category ids")
    for key in ("encoder", "label_space"):
        if not isinstance(ckpt.get(key) or "", str):
            raise bad(key, "is not a name")
    if ckpt.get("label_space", "dataset") not in get_args(LabelSpace):
        raise bad("label_space", f"is not one of {', '.join(get_args(LabelSpace))}")
    _check_preprocess(path, ckpt.get("preprocess"))


def _check_preprocess(path: Path, given: object) -> None:
    """A checkpoint's preprocessing: empty, or :class:`Preprocess`'s fields with sane values."""
    if not given:
        return
    known = {f.name: f for f in dataclasses.fields(Preprocess)}
    if not isinstance(given, dict) or not set(given) <= set(known) or "resize" not in given:
        keys = ", ".join(map(str, given)) if isinstance(given, dict) else type(given).__name__
        raise WeightsError(f"{path}: a damaged checkpoint: unknown preprocessing ({keys})")
    sizes = [given[k] for k in ("resize", "crop", "multiple_of") if given.get(k) is not None]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in sizes):
        raise WeightsError(f"{path}: a damaged checkpoint: preprocessing sizes {sizes}")
    if not isinstance(given.get("square", False), bool):
        raise WeightsError(f"{path}: a damaged checkpoint: preprocessing 'square' not a bool")


def _published(spec: ModelSpec, download: bool) -> _Source:
    if spec.weights_enum is None:
        raise WeightsError(
            f"{spec.name} has no published weights: pass --weights (a file or a training run "
            f"folder), train one (python -m explorer train / the Train page), or ask "
            f"for --weights untrained"
        )
    state = _published_state_dict(spec, download)
    enum = published_weights(spec)
    label = f"published {type(enum).__name__}.{enum.name}"
    return _Source(state, None, label, f"published:{spec.weights_enum}")


def _labels(
    spec: ModelSpec, source: _Source, dataset_categories: list[Category] | None
) -> tuple[list[str], list[int | None]]:
    """Class names and, for dataset label spaces, the category id of each output label."""
    ckpt = source.checkpoint
    if spec.label_space == "dataset" and source.state is None and dataset_categories:
        kind = task_kind(spec.task)
        return (
            kind.class_names([c["name"] for c in dataset_categories]),
            kind.class_category_ids([c["id"] for c in dataset_categories]),
        )
    return _class_names(spec, ckpt, source.state), list((ckpt or {}).get("category_ids", []))


def _filled_module(spec: ModelSpec, source: _Source, n: int, encoder: str | None, origin: str):
    """The architecture with ``n`` outputs, its weights loaded strictly from ``source``."""
    import torch

    torch.manual_seed(0)  # untrained models are the same random weights every time
    state = source.state
    aux = state is None or any(k.startswith("aux_classifier.") for k in state)
    module = create_model(spec.name, num_classes=n, encoder=encoder, aux_loss=aux)
    if state is not None:
        _fit(module, state, origin, spec.name)
    if getattr(module, "aux_classifier", None) is not None:
        module.aux_classifier = None  # only used in training: skip its compute at inference
    return module


def _to_device(module, device: str) -> None:
    import torch

    module.eval().to(device)
    if device.startswith("cuda"):
        module.to(memory_format=torch.channels_last)


def _class_names(spec: ModelSpec, ckpt: dict | None, state: dict | None) -> list[str]:
    if ckpt is not None:
        return list(ckpt["class_names"])
    if spec.label_space == "imagenet":
        return list(published_weights(spec).meta["categories"])
    if spec.label_space == "voc":
        return list(VOC_NAMES)
    if state is not None:  # a bare state_dict of a dataset model: count its outputs
        last = [v for k, v in state.items() if k.endswith("weight")][-1]
        return [f"class {i}" for i in range(last.shape[0])]
    if spec.label_space == "dataset" and state is None:
        return ["class 0"]  # replaced by the dataset's categories by the caller
    raise WeightsError(
        f"{spec.name} learns a dataset's classes: give a trained checkpoint or run folder"
    )
