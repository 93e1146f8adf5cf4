"""What a model's prediction is, per output kind: one codec each, used by the runner (raw
scores → :data:`Output`), the prediction cache (``Output`` → bytes → :data:`Record`) and the Ray
engine (outputs ↔ columns Ray can carry).

A codec is looked up from the model (:func:`codec_for`): its task's codec, or the feature codec
for a model whose outputs are a classifier's penultimate features. A new output kind is one class
here and its registration, not a branch in the runner, the cache and the engine.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from explorer.models.tasks import CLASSIFY, SEGMENT, task_kind

if TYPE_CHECKING:
    from explorer.models.weights import LoadedModel

Output: TypeAlias = np.ndarray | tuple[np.ndarray, dict[int, float]]
"""What the runner yields: a classifier's probability vector (float32), a segmenter's
``(labels, scores)`` (labels uint8 HxW at the original image size, scores the mean winning
probability per label), or a feature vector (float32)."""

TopLabelsRecord: TypeAlias = tuple[np.ndarray, np.ndarray]
LabelMapRecord: TypeAlias = tuple[np.ndarray, dict[int, float]]
Record: TypeAlias = TopLabelsRecord | LabelMapRecord | np.ndarray
"""A decoded cache record: a classifier's ``(top label indices, their probabilities)``, best
first; a segmenter's ``(labels uint8 HxW, mean winning probability per label)``; a feature
model's vector (float32)."""

TOP_K = 10  # a classifier's record keeps its 10 best labels, not all 1000 probabilities
MAX_LABEL_MAP_PIXELS = 1 << 28  # a stored label map larger than this is not one we wrote


class DamagedRecord(ValueError):
    """Cache bytes that are not a record this codec wrote for this model (truncated, of another
    type, NaN, labels the model does not have): the prediction cache computes it again."""


class OutputCodec(Protocol):
    """One output kind: how raw scores become outputs, and how outputs are stored and carried."""

    def default_batch_size(self, device: str) -> int:
        """Inputs per batch when the user gives none."""
        ...

    def postprocess(self, scores: Any, sizes: list[tuple[int, int]]) -> list[Output]:
        """A batch's raw scores (a float tensor) → one :data:`Output` per input of annotated
        ``sizes[i]`` = (width, height)."""
        ...

    def encode(self, output: Output) -> bytes:
        """An output as cache bytes."""
        ...

    def decode(self, blob: bytes, width: int) -> Record:
        """Cache bytes as the record every product reads, checked against ``width`` (the
        model's label count; a feature model's vector length, 0 when unknown).

        Raises:
            DamagedRecord: the bytes are not such a record.
        """
        ...

    def columns(self, outputs: list[Output | None]) -> dict[str, np.ndarray]:
        """Outputs (None: the input failed) as columns a Ray Data batch can carry."""
        ...

    def from_columns(self, batch: dict[str, np.ndarray], failed: list[bool]) -> list:
        """The outputs of a result batch's rows (None where ``failed``)."""
        ...


class _VectorCodec:
    """One float vector per input: the columns both vector kinds share."""

    def default_batch_size(self, device: str) -> int:
        return 256 if device.startswith("cuda") else 32

    def columns(self, outputs: list) -> dict[str, np.ndarray]:
        width = max((len(o) for o in outputs if o is not None), default=0)
        empty = np.full(width, np.nan, np.float32)
        return {"probs": np.stack([empty if o is None else o for o in outputs])}

    def from_columns(self, batch: dict[str, np.ndarray], failed: list[bool]) -> list:
        return [
            None if bad else np.asarray(p, np.float32)
            for bad, p in zip(failed, batch["probs"], strict=True)
        ]


class Probabilities(_VectorCodec):
    """A classifier's softmax over its labels; the cache keeps the :data:`TOP_K` best."""

    def postprocess(self, scores, sizes: list[tuple[int, int]]) -> list[Output]:
        import torch

        return list(torch.softmax(scores, 1).cpu().numpy())

    def encode(self, output) -> bytes:
        order = np.argsort(-output)[:TOP_K]
        top = [order.astype(np.float32), output[order].astype(np.float32)]
        return np.concatenate(top).tobytes()

    def decode(self, blob: bytes, width: int) -> Record:
        v = _vector(blob, np.float32)
        k = len(v) // 2
        top, probs = v[:k], v[k:]
        if (
            len(v) != 2 * min(TOP_K, width)
            or not np.isfinite(v).all()
            or not ((top >= 0) & (top < width) & (top == np.round(top))).all()
            or len(np.unique(top)) != k
            or not ((probs >= 0) & (probs <= 1.001)).all()
        ):
            raise DamagedRecord(f"not the {min(TOP_K, width)} best of {width} probabilities")
        return top.astype(np.int64), probs


class Features(_VectorCodec):
    """A classifier's penultimate features (:func:`explorer.models.features.feature_model`),
    stored in half precision: the features of 860k objects stay a few GB."""

    def postprocess(self, scores, sizes: list[tuple[int, int]]) -> list[Output]:
        return list(scores.cpu().numpy())

    def encode(self, output) -> bytes:
        return np.asarray(output, np.float16).tobytes()

    def decode(self, blob: bytes, width: int) -> Record:
        v = _vector(blob, np.float16).astype(np.float32)
        if (width and len(v) != width) or not np.isfinite(v).all():
            raise DamagedRecord(f"not a finite vector of {width or 'some'} features")
        return v


class LabelMaps:
    """A segmenter's label per pixel at the image's own size, and the mean winning probability
    of each label present; stored as a PNG behind a JSON head."""

    def default_batch_size(self, device: str) -> int:
        # on a CPU, segmentation activations at 520 px outgrow the caches
        return 16 if device.startswith("cuda") else 2

    def postprocess(self, scores, sizes: list[tuple[int, int]]) -> list[Output]:
        import torch

        # per-label scores on a 4x coarser grid: cheap, and only a summary
        coarse = torch.softmax(scores[:, :, ::4, ::4], 1).max(1)
        results: list[Output] = []
        for k, (w, h) in enumerate(sizes):
            labels = at_image_size(scores[k], (w, h)).argmax(0)
            prob, small = coarse.values[k].flatten(), coarse.indices[k].flatten()
            sums = torch.zeros(scores.shape[1], device=scores.device).index_add_(0, small, prob)
            counts = torch.bincount(small, minlength=scores.shape[1]).clamp(min=1)
            per_label = {int(c): float(sums[c] / counts[c]) for c in torch.unique(labels).tolist()}
            results.append((labels.to(torch.uint8).cpu().numpy(), per_label))
        return results

    def encode(self, output) -> bytes:
        from PIL import Image

        labels, scores = output
        buf = io.BytesIO()
        Image.fromarray(labels, mode="L").save(buf, format="PNG", compress_level=1)
        head = json.dumps({str(k): v for k, v in scores.items()}).encode()
        return len(head).to_bytes(4, "little") + head + buf.getvalue()

    def decode(self, blob: bytes, width: int) -> Record:
        import struct
        import zlib

        from PIL import Image

        if not isinstance(blob, bytes) or len(blob) < 4:
            raise DamagedRecord("not a label map")
        n = int.from_bytes(blob[:4], "little")
        try:
            head = json.loads(blob[4 : 4 + n])
            scores = {int(k): float(v) for k, v in head.items()}
            with Image.open(io.BytesIO(blob[4 + n :]), formats=["PNG"]) as im:
                if im.mode != "L" or im.width * im.height > MAX_LABEL_MAP_PIXELS:
                    raise DamagedRecord(f"a {im.mode} image of {im.size}, not a label map")
                labels = np.asarray(im)
        except (ValueError, TypeError, AttributeError, RecursionError) as e:
            raise DamagedRecord(f"not a label map ({e.__class__.__name__})") from None
        except (OSError, SyntaxError, EOFError, struct.error, zlib.error) as e:  # PIL's, damaged
            raise DamagedRecord(f"not a label map ({e.__class__.__name__})") from None
        known = all(0 <= k < width and 0 <= v <= 1.001 for k, v in scores.items())
        if labels.ndim != 2 or not known or (labels.size and int(labels.max()) >= width):
            raise DamagedRecord(f"labels or scores beyond the model's {width}")
        return labels, scores

    def columns(self, outputs: list) -> dict[str, np.ndarray]:
        none: tuple[np.ndarray, dict[int, float]] = (np.zeros((0, 0), np.uint8), {})
        pairs = [none if o is None else o for o in outputs]
        return {
            "labels": np.array([p[0].tobytes() for p in pairs], dtype=object),
            "labels_shape": np.array([p[0].shape for p in pairs], dtype=np.int64),
            "scores": np.array([json.dumps(p[1]) for p in pairs]),
        }

    def from_columns(self, batch: dict[str, np.ndarray], failed: list[bool]) -> list:
        return [
            None
            if bad
            else (
                np.frombuffer(lab, np.uint8).reshape([int(v) for v in shape]),
                {int(k): v for k, v in json.loads(s).items()},
            )
            for bad, lab, shape, s in zip(
                failed, batch["labels"], batch["labels_shape"], batch["scores"], strict=True
            )
        ]


def _vector(blob: object, dtype) -> np.ndarray:
    """Cache bytes as a non-empty vector of ``dtype`` (DamagedRecord when they are not)."""
    size = np.dtype(dtype).itemsize
    if not isinstance(blob, bytes) or not blob or len(blob) % size:
        kind = type(blob).__name__
        raise DamagedRecord(f"{len(blob) if isinstance(blob, bytes) else kind} bytes")
    return np.frombuffer(blob, dtype)


def at_image_size(scores, size: tuple[int, int]):
    """One image's (C, h, w) segmentation scores resized to its own ``size`` (width, height),
    as every prediction is made: bilinear, corners not aligned."""
    import torch.nn.functional as F

    w, h = size
    return F.interpolate(scores[None], size=(h, w), mode="bilinear", align_corners=False)[0]


FEATURES = Features()
_BY_TASK: dict[str, OutputCodec] = {CLASSIFY.name: Probabilities(), SEGMENT.name: LabelMaps()}


def codec_for(model: LoadedModel) -> OutputCodec:
    """The codec of a model's outputs: its features', or its task's."""
    return FEATURES if model.features else task_codec(model.task)


def task_codec(task: str) -> OutputCodec:
    """The codec of a task's model outputs."""
    return _BY_TASK[task_kind(task).name]  # task_kind: an unknown task's error lists the valid
