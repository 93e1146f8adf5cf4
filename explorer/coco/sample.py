"""The embedded sample dataset: generated, seeded, offline, in the layout of a COCO download.

``write_sample()`` writes ``annotations/instances_{train,val}2017.json``, ``train2017/*.jpg`` and
``val2017/*.jpg`` under ``<cache>/sample`` (once; later calls return the folder).

It is built to be learnable on a CPU, yet not trivial: seven classes in three supercategories
differ in shape *and* in a characteristic colour and texture (as real classes do), on textured,
cluttered backgrounds, with size variation, occluding poles that split objects into multi-part
polygons, overlapping objects, and crowd regions stored as uncompressed RLE (``iscrowd: 1``).
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from explorer.paths import cache_dir, storage_guard

SAMPLE_VERSION = 1
SPLITS = {"train2017": 320, "val2017": 100}
SIZES = ((256, 192), (192, 256), (224, 224), (256, 160), (240, 180))

# id, name, supercategory, shape, hue (degrees), texture
CLASSES = (
    (1, "circle", "round", "circle", 0, "radial"),
    (2, "crescent", "round", "crescent", 52, "solid"),
    (3, "triangle", "angular", "triangle", 120, "hstripes"),
    (5, "square", "angular", "square", 220, "checker"),
    (6, "hexagon", "angular", "hexagon", 280, "dots"),
    (8, "star", "pointy", "star", 28, "solid"),
    (9, "cross", "pointy", "cross", 180, "dstripes"),
)


def default_root() -> Path:
    return cache_dir("sample")


def is_written(root: Path | None = None, seed: int = 0) -> bool:
    """Whether the sample is already complete under ``root`` (no work left for write_sample)."""
    stamp = (Path(root) if root else default_root()) / ".complete"
    return stamp.is_file() and stamp.read_text().strip() == f"v{SAMPLE_VERSION} seed{seed}"


def write_sample(root: Path | None = None, seed: int = 0, force: bool = False) -> Path:
    """Write the sample dataset (idempotent) and return its root folder."""
    root = Path(root) if root else default_root()
    if not force and is_written(root, seed):
        return root
    with storage_guard(root):  # a full disk: one line naming the folder, nothing half-written
        root.parent.mkdir(parents=True, exist_ok=True)
        _write_complete(root, seed)
    return root


def _write_complete(root: Path, seed: int) -> None:
    """Write the sample in a temporary folder beside ``root``, renamed into place when done."""
    tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=root.parent))
    try:
        (tmp / "annotations").mkdir()
        next_ann_id = 1
        for k, split in enumerate(SPLITS):
            rng = np.random.default_rng([seed, k])
            next_ann_id = _write_split(tmp, split, rng, next_ann_id, id_base=(k + 1) * 100000)
        (tmp / ".complete").write_text(f"v{SAMPLE_VERSION} seed{seed}\n")
        if root.exists():
            shutil.rmtree(root)
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_split(
    root: Path, split: str, rng: np.random.Generator, next_ann_id: int, id_base: int
) -> int:
    """Write split ``split`` (its images and annotation file, ``SPLITS[split]`` images with ids
    from ``id_base``); returns the next free annotation id."""
    from PIL import Image

    n_images = SPLITS[split]
    (root / split).mkdir()
    images, annotations = [], []
    ids = np.sort(rng.choice(np.arange(id_base, id_base + 20 * n_images), n_images, replace=False))
    for image_id in ids.tolist():
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        pixels, anns = _render_image(w, h, rng)
        name = f"{image_id:012d}.jpg"
        Image.fromarray(pixels).save(root / split / name, quality=90)
        images.append(
            {
                "license": 1,
                "file_name": name,
                "coco_url": "",
                "height": h,
                "width": w,
                "date_captured": "2026-01-01 00:00:00",
                "flickr_url": "",
                "id": image_id,
            }
        )
        for a in anns:
            annotations.append({**a, "image_id": image_id, "id": next_ann_id})
            next_ann_id += 1
    doc = {
        "info": {
            "description": "COCO Explorer embedded sample (generated)",
            "version": str(SAMPLE_VERSION),
            "year": 2026,
        },
        "licenses": [{"id": 1, "name": "CC0 (generated data)", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": s, "id": i, "name": n} for i, n, s, *_ in CLASSES],
    }
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return next_ann_id


# ----------------------------------------------------------------------------- rendering


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360, s, v), np.float32) * 255


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Muted low-frequency noise in two tones, plus thin clutter lines."""
    from PIL import Image, ImageDraw

    base_hue = rng.uniform(0, 360)
    c1, c2 = (
        _hsv(base_hue, rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.8)),
        _hsv(base_hue + rng.uniform(-60, 60), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.8)),
    )
    t = np.zeros((h, w), np.float32)
    for cells, weight in ((4, 0.6), (12, 0.3), (40, 0.1)):
        small = rng.random((cells, cells)).astype(np.float32)
        t += weight * np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR))
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(0, 6))):
        col = tuple(
            int(x) for x in _hsv(rng.uniform(0, 360), rng.uniform(0, 0.5), rng.uniform(0.2, 0.9))
        )
        draw.line(
            [tuple(rng.uniform(0, (w, h))) for _ in range(2)],
            fill=col,
            width=int(rng.integers(1, 3)),
        )
    return np.asarray(pil).astype(np.float32)


def _shape_polygon(
    shape: str, centre: tuple[float, float], r: float, rot: float, rng: np.random.Generator
) -> np.ndarray:
    """Outline of one object as an (n, 2) array of x, y: ``centre`` (x, y), radius ``r``,
    rotated by ``rot``."""
    cx, cy = centre

    def ring(n: int, radius: np.ndarray | float, start: float = 0.0) -> np.ndarray:
        a = start + rot + np.arange(n) * 2 * math.pi / n
        return np.stack([cx + radius * np.cos(a), cy + radius * np.sin(a)], 1)

    if shape == "circle":
        return ring(28, r * rng.uniform(0.97, 1.03, 28))
    if shape == "triangle":
        return ring(3, r)
    if shape == "square":
        return ring(4, r, math.pi / 4)
    if shape == "hexagon":
        return ring(6, r)
    if shape == "star":
        return ring(10, np.where(np.arange(10) % 2 == 0, r, 0.45 * r))
    if shape == "cross":
        return _place(_cross_outline() * r, cx, cy, rot)
    if shape == "crescent":
        return _place(_crescent_outline(r), cx, cy, rot)
    raise ValueError(shape)


def _place(pts: np.ndarray, cx: float, cy: float, rot: float) -> np.ndarray:
    """``pts`` (centred on the origin) rotated by ``rot`` and moved to (cx, cy)."""
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + pts[:, 0] * c - pts[:, 1] * s, cy + pts[:, 0] * s + pts[:, 1] * c], 1)


def _cross_outline() -> np.ndarray:
    """A plus sign of half-width 1 whose arms are 0.33 wide."""
    a = 0.33
    return np.array(
        [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a)]
        + [(a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]
    )


def _crescent_outline(r: float) -> np.ndarray:
    """The disc of radius ``r`` minus the disc of radius 0.8 r centred at (0.45 r, 0)."""
    a1 = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    outer = np.stack([r * np.cos(a1), r * np.sin(a1)], 1)
    inner = np.stack([0.45 * r + 0.8 * r * np.cos(a1), 0.8 * r * np.sin(a1)], 1)
    out_keep = np.hypot(outer[:, 0] - 0.45 * r, outer[:, 1]) > 0.8 * r
    in_keep = np.hypot(inner[:, 0], inner[:, 1]) < r
    arc_out = outer[out_keep][np.argsort(np.mod(a1[out_keep], 2 * math.pi))]
    arc_in = inner[in_keep][np.argsort(-np.mod(a1[in_keep], 2 * math.pi))]
    return np.concatenate([arc_out, arc_in])


def _texture(kind: str, hue: float, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """An (h, w, 3) fill in the class's colour family with the class's pattern."""
    col = _hsv(hue + rng.uniform(-12, 12), rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(5, 9)
    if kind == "radial":
        cx, cy = w * rng.uniform(0.3, 0.5), h * rng.uniform(0.3, 0.5)
        shade = 1.15 - 0.6 * np.hypot(xx - cx, yy - cy) / max(w, h)
    elif kind == "hstripes":
        shade = 0.75 + 0.35 * (np.sin(yy * 2 * math.pi / period) > 0)
    elif kind == "dstripes":
        shade = 0.75 + 0.35 * (np.sin((xx + yy) * 2 * math.pi / period) > 0)
    elif kind == "checker":
        shade = 0.75 + 0.35 * ((xx // (period * 0.8) + yy // (period * 0.8)) % 2)
    elif kind == "dots":
        shade = 1.0 - 0.4 * (
            (np.hypot(xx % period - period / 2, yy % period - period / 2)) < period / 4
        )
    else:
        shade = np.full((h, w), 1.0, np.float32)
    return col * shade[..., None]


def _clip_half_plane(poly: np.ndarray, nx: float, ny: float, d: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of ``poly`` where nx*x + ny*y <= d."""
    out = []
    for i in range(len(poly)):
        p, q = poly[i], poly[(i + 1) % len(poly)]
        fp, fq = nx * p[0] + ny * p[1] - d, nx * q[0] + ny * q[1] - d
        if fp <= 0:
            out.append(p)
        if fp * fq < 0:
            out.append(p + (q - p) * (fp / (fp - fq)))
    return np.array(out).reshape(-1, 2)


def _polygon_area(p: np.ndarray) -> float:
    return 0.5 * abs(
        float(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1)))
    )


def _rle_uncompressed(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (column-major runs, starting with background)."""
    flat = np.asarray(mask, bool).flatten(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs
    return {"counts": runs, "size": list(mask.shape)}


def _render_image(w: int, h: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One image and its annotations. The order of ``rng`` draws is the sample's identity:
    reordering them would change every generated file."""
    img = _background(w, h, rng)
    anns: list[dict] = []
    if rng.random() < 0.3:
        crowd = _crowd(img, rng)
        if crowd is not None:
            anns.append(crowd)
    anns += _objects(img, rng)
    if rng.random() < 0.35:
        _occluding_pole(img, anns, rng)
    out = [_polygon_annotation(a) if "poly" in a else a for a in anns]
    return img.clip(0, 255).astype(np.uint8), [a for a in out if a is not None]


def _raster(polys: list[np.ndarray], w: int, h: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    for p in polys:
        d.polygon([tuple(xy) for xy in p], fill=1)
    return np.asarray(m, bool)


def _paint(img: np.ndarray, mask: np.ndarray, cls: tuple, rng: np.random.Generator) -> None:
    """Fill ``mask`` in ``img`` with the class's texture."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return
    y0, x0 = ys.min(), xs.min()
    tex = _texture(cls[5], cls[4], xs.max() - x0 + 1, ys.max() - y0 + 1, rng)
    img[ys, xs] = tex[ys - y0, xs - x0]


def _crowd(img: np.ndarray, rng: np.random.Generator) -> dict | None:
    """Many small objects of one class painted into ``img``, annotated as one crowd RLE."""
    h, w = img.shape[:2]
    cls = CLASSES[int(rng.integers(len(CLASSES)))]
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    polys = [
        _shape_polygon(
            cls[3],
            (cx + rng.normal(0, w / 10), cy + rng.normal(0, h / 10)),
            rng.uniform(3, 6),
            rng.uniform(0, 2 * math.pi),
            rng,
        )
        for _ in range(int(rng.integers(6, 14)))
    ]
    mask = _raster(polys, w, h)
    _paint(img, mask, cls, rng)
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    return {
        "segmentation": _rle_uncompressed(mask),
        "area": float(mask.sum()),
        "iscrowd": 1,
        "bbox": [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ],
        "category_id": cls[0],
    }


def _objects(img: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """2 to 5 objects painted into ``img``, mostly apart; each ``{"poly": [outline], ...}``."""
    h, w = img.shape[:2]
    anns = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(2, 6))):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        for _try in range(20):
            r = float(min(w, h) * rng.uniform(0.09, 0.26))
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            clear = all(math.hypot(cx - px, cy - py) > 0.9 * (r + pr) for px, py, pr in placed)
            if clear or rng.random() < 0.1:  # a few overlap: amodal annotations, 255 in masks
                break
        placed.append((cx, cy, r))
        poly = _shape_polygon(cls[3], (cx, cy), r, float(rng.uniform(0, 2 * math.pi)), rng)
        _paint(img, _raster([poly], w, h), cls, rng)
        anns.append({"poly": [poly], "category_id": cls[0], "iscrowd": 0})
    return anns


def _occluding_pole(img: np.ndarray, anns: list[dict], rng: np.random.Generator) -> None:
    """Paint a pole across ``img``; the polygons it crosses become two-part polygons."""
    h, w = img.shape[:2]
    x_mid, half = rng.uniform(0.2, 0.8) * w, float(rng.uniform(2.5, 5))
    tilt = rng.uniform(-0.3, 0.3)
    nx, ny = math.cos(tilt), math.sin(tilt)
    d = nx * x_mid + ny * h / 2
    strip = np.abs(nx * np.arange(w)[None, :] + ny * np.arange(h)[:, None] - d) <= half
    img[strip] = _hsv(rng.uniform(20, 40), 0.3, rng.uniform(0.25, 0.45))
    for a in anns:
        if "poly" not in a:
            continue
        parts = []
        for p in a["poly"]:
            parts += [
                _clip_half_plane(p, nx, ny, d - half),
                _clip_half_plane(p, -nx, -ny, -d - half),
            ]
        a["poly"] = [p for p in parts if len(p) >= 3 and _polygon_area(p) >= 4]


def _polygon_annotation(a: dict) -> dict | None:
    """The COCO record of an object's polygon parts; None when the pole hid it wholly."""
    parts = a["poly"]
    if not parts:
        return None
    pts = np.concatenate(parts)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return {
        "segmentation": [[round(float(v), 2) for v in p.flatten()] for p in parts],
        "area": round(sum(_polygon_area(p) for p in parts), 2),
        "iscrowd": 0,
        "bbox": [
            round(float(x0), 2),
            round(float(y0), 2),
            round(float(x1 - x0), 2),
            round(float(y1 - y0), 2),
        ],
        "category_id": a["category_id"],
    }
