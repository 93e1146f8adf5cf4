"""How a CNN is built and what it computes: the darknet-style layer table, from forward hooks.

Layers are the leaf modules a forward pass actually calls, in call order. Activations and batch
norms are folded into the layer before them (as darknet prints them); flattening is left out; a
classifier ends with a softmax row. Parameters and multiply-accumulates are counted per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from explorer.models.outputs import logits
from explorer.models.registry import create_model, get_spec

_FOLDED = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.SiLU,
    nn.GELU,
    nn.Sigmoid,
    nn.BatchNorm2d,
    nn.BatchNorm1d,
    nn.LocalResponseNorm,
    nn.Identity,
)
_SKIPPED = (nn.Flatten,)


@dataclass
class Layer:
    """One row of the table. Shapes are (C, H, W) for maps, (N,) for vectors."""

    kind: str
    module: nn.Module = field(repr=False)
    name: str
    in_shape: tuple
    out_shape: tuple
    params: int
    macs: int
    folded: list[str] = field(default_factory=list)

    def describe(self) -> str:
        m: Any = self.module  # a conv, pool or linear layer: its attributes by kind
        if self.kind == "conv":
            k, s, p = (
                m.kernel_size[0],
                m.stride[0],
                m.padding[0] if isinstance(m.padding, tuple) else 0,
            )
            head = f"conv  {m.out_channels:5d} {k:2d} x{k:2d} / {s} / {p}"
        elif (
            self.kind in ("max", "avg")
            and hasattr(m, "kernel_size")
            and not isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
        ):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            p = m.padding if isinstance(m.padding, int) else m.padding[0]
            head = f"{self.kind:<5}       {k:2d} x{k:2d} / {s} / {p}"
        elif self.kind == "connected":
            return f"connected{'':23}{self.in_shape[0]:6d}  ->  {self.out_shape[0]:4d}"
        elif self.kind == "dropout":
            sizes = f"{_size(self.in_shape)}  ->  {_size(self.out_shape)}"
            return f"dropout       p = {m.p:.2f}{'':12}{sizes}"
        elif self.kind == "softmax":
            return f"softmax{'':44}{self.out_shape[0]:4d}"
        else:
            head = f"{self.kind:<22}"
        return f"{head:<29}{_map(self.in_shape)}  ->  {_map(self.out_shape)}"


def _map(shape: tuple) -> str:
    if len(shape) == 3:
        c, h, w = shape
        return f"{h:4d} x{w:4d} x{c:4d}"
    return f"{shape[0]:15d}"


def _size(shape: tuple) -> str:
    return f"{shape[0]:4d}" if len(shape) == 1 else _map(shape)


def _kind(m: nn.Module) -> str | None:
    if isinstance(m, nn.Conv2d):
        return "conv"
    if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
        return "max"
    if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return "avg"
    if isinstance(m, nn.Linear):
        return "connected"
    if isinstance(m, nn.Dropout):
        return "dropout"
    if isinstance(m, nn.Upsample):
        return "upsample"
    return None


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        k = m.kernel_size[0] * m.kernel_size[1]
        return int(k * m.in_channels // m.groups * m.out_channels * out.shape[-2] * out.shape[-1])
    if isinstance(m, nn.Linear):
        return int(m.in_features * m.out_features)
    return 0


def layer_table(
    model: nn.Module, height: int, width: int | None = None, softmax: bool = True
) -> list[Layer]:
    """Run one (zero) image through ``model`` and list its layers in call order."""
    calls, out = _leaf_calls(model, torch.zeros(1, 3, height, width or height))
    rows: list[Layer] = []
    for name, m, x, y in calls:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            continue
        kind = _kind(m)
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if kind is None:
            if rows and (isinstance(m, _FOLDED) or isinstance(m, _SKIPPED) or own == 0):
                rows[-1].params += own
                if not isinstance(m, _SKIPPED):
                    rows[-1].folded.append(type(m).__name__)
                continue
            kind = type(m).__name__.lower()
        rows.append(Layer(kind, m, name, tuple(x.shape[1:]), tuple(y.shape[1:]), own, _macs(m, y)))
    out = logits(out)
    if softmax and out.dim() == 2:
        shape = tuple(out.shape[1:])
        rows.append(Layer("softmax", nn.Softmax(1), "softmax", shape, shape, 0, 0))
    return rows


def architecture(name: str, encoder: str | None = None) -> nn.Module:
    """A registry model in its published (or classic) layout with random weights: the layer
    table does not depend on the weights, so it needs none."""
    return create_model(name, num_classes=get_spec(name).head_size, encoder=encoder)


def _forward_with_hooks(model: nn.Module, x: torch.Tensor, hooks: list) -> torch.Tensor:
    """``model(x)`` without gradients, with forward ``hooks`` ((module, fn) pairs) attached only
    for this pass."""
    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for h in handles:
            h.remove()


def _leaf_calls(model: nn.Module, x: torch.Tensor):
    """(name, module, input, output) of every leaf module in call order, and the model's output;
    the model runs in eval mode and is left in the mode it was in."""
    calls: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
    hooks = [
        (m, lambda mod, inp, out, name=name: calls.append((name, mod, inp[0], out)))
        for name, m in model.named_modules()
        if len(list(m.children())) == 0
    ]
    was_training = model.training
    model.eval()
    try:
        out = _forward_with_hooks(model, x, hooks)
    finally:
        model.train(was_training)
    return calls, out


def format_table(rows: list[Layer]) -> str:
    """The darknet-style table with parameter and MAC columns, and totals."""
    lines = [
        f"{'layer':>5} {'type':<10}{'filters  size/strd/pad':<24}{'input':>16}  ->  {'output':<16}"
        f"{'params':>12}{'MACs':>16}"
    ]
    for i, r in enumerate(rows):
        lines.append(f"{i:5d} {r.describe():<76}{r.params:12,d}{r.macs:16,d}")
    total_p = sum(r.params for r in rows)
    total_m = sum(r.macs for r in rows)
    lines.append(
        f"{'':5} total: {total_p:,} parameters ({total_p / 1e6:.1f}M), "
        f"{total_m:,} multiply-accumulates ({total_m / 1e9:.2f} GMAC)"
    )
    return "\n".join(lines)


def capture(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named modules for input ``x``, and the model's logits as ``__output__``.

    Cloned: in-place ReLUs would overwrite them."""
    got: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [
        (modules[n], lambda mod, inp, out, n=n: got.__setitem__(n, out.detach().clone()))
        for n in names
        if n in modules
    ]
    got["__output__"] = logits(_forward_with_hooks(model, x, hooks)).detach()
    return got


def top_channels(fmap: torch.Tensor, k: int = 16) -> list[int]:
    """The ``k`` channels of a (C, H, W) map with the highest mean activation."""
    return torch.argsort(fmap.flatten(1).mean(1), descending=True)[:k].tolist()


def tile(maps, columns: int = 4, cell: int = 96, pad: int = 2):
    """(N, H, W) maps, each normalised to 0..255 on its own, as one grayscale grid (numpy uint8)."""
    import numpy as np
    from PIL import Image

    maps = [m.float() for m in maps]
    rows = -(-len(maps) // columns)
    grid = np.full((rows * (cell + pad) + pad, columns * (cell + pad) + pad), 255, np.uint8)
    for i, m in enumerate(maps):
        lo, hi = float(m.min()), float(m.max())
        arr = ((m - lo) / (hi - lo + 1e-8) * 255).clamp(0, 255).byte().cpu().numpy()
        img = np.asarray(Image.fromarray(arr).resize((cell, cell), Image.Resampling.NEAREST))
        r, c = divmod(i, columns)
        y0, x0 = pad + r * (cell + pad), pad + c * (cell + pad)
        grid[y0 : y0 + cell, x0 : x0 + cell] = img
    return grid


def filter_tiles(conv: nn.Conv2d, columns: int = 12, cell: int = 33):
    """The first convolution's filters as RGB tiles (each normalised on its own), numpy uint8."""
    import numpy as np
    from PIL import Image

    w = conv.weight.detach().float().cpu()
    n = w.shape[0]
    rows = -(-n // columns)
    grid = np.full((rows * (cell + 2) + 2, columns * (cell + 2) + 2, 3), 255, np.uint8)
    for i in range(n):
        f = w[i, :3] if w.shape[1] >= 3 else w[i, :1].repeat(3, 1, 1)
        f = (f - f.min()) / (f.max() - f.min() + 1e-8)
        img = np.asarray(
            Image.fromarray((f.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).resize(
                (cell, cell), Image.Resampling.NEAREST
            )
        )
        r, c = divmod(i, columns)
        grid[
            2 + r * (cell + 2) : 2 + r * (cell + 2) + cell,
            2 + c * (cell + 2) : 2 + c * (cell + 2) + cell,
        ] = img
    return grid


def model_input(model, rgb) -> torch.Tensor:
    """An RGB image (H, W, 3 uint8) as the model's preprocessed batch of one, on its device."""
    import numpy as np

    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    return model.preprocess(x)[None].to(model.device)


def to_uint8(values: torch.Tensor):
    """A 2-D map scaled to 0..255 on its own (numpy uint8): how a map is shown over an image."""
    lo, hi = values.min(), values.max()
    return ((values - lo) / (hi - lo + 1e-8) * 255).byte().cpu().numpy()


def top_classes(logits: torch.Tensor, k: int = 10) -> tuple[list[int], list[float]]:
    """A classifier's ``k`` most probable labels and their softmax probabilities."""
    prob = torch.softmax(logits, 0)
    top = torch.argsort(prob, descending=True)[:k].tolist()
    return top, [float(prob[t]) for t in top]


def class_score_maps(logits: torch.Tensor, k: int = 8):
    """A segmenter's ``k`` labels with the highest mean probability, and every label's per-pixel
    probability as 0..255 (numpy uint8, C x H x W)."""
    scores = torch.softmax(logits, 0)
    top = torch.argsort(scores.flatten(1).mean(1), descending=True)[:k].tolist()
    return top, (scores * 255).byte().cpu().numpy()
