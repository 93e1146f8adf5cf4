"""The layer table: the classic AlexNet rows exactly, totals of the torchvision models."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from explorer.models import anatomy, create_model
from tests.helpers import ROOT

CLASSIC = """
   0 conv     96 11 x11 / 4 / 0   227 x 227 x   3  ->    55 x  55 x  96
   1 max          3 x 3 / 2 / 0    55 x  55 x  96  ->    27 x  27 x  96
   2 conv    256  5 x 5 / 1 / 2    27 x  27 x  96  ->    27 x  27 x 256
   3 max          3 x 3 / 2 / 0    27 x  27 x 256  ->    13 x  13 x 256
   4 conv    384  3 x 3 / 1 / 1    13 x  13 x 256  ->    13 x  13 x 384
   5 conv    384  3 x 3 / 1 / 1    13 x  13 x 384  ->    13 x  13 x 384
   6 conv    256  3 x 3 / 1 / 1    13 x  13 x 384  ->    13 x  13 x 256
   7 max          3 x 3 / 2 / 0    13 x  13 x 256  ->     6 x   6 x 256
   8 connected                              9216  ->  4096
   9 dropout       p = 0.50                 4096  ->  4096
  10 connected                              4096  ->  4096
  11 dropout       p = 0.50                 4096  ->  4096
  12 connected                              4096  ->  1000
  13 softmax                                          1000
"""


def norm(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def test_classic_alexnet_table_exactly():
    r = subprocess.run(
        [sys.executable, "-m", "explorer", "anatomy", "alexnet-classic", "--input", "227"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = [norm(line) for line in r.stdout.splitlines()]
    want = [norm(line) for line in CLASSIC.strip().splitlines()]
    rows = [g for g in got if re.match(r"^\d+ ", g)]
    assert len(rows) == 14
    for w, g in zip(want, rows, strict=True):
        assert g.startswith(w), (w, g)  # then the params and MACs columns


def test_torchvision_alexnet_totals():
    rows = anatomy.layer_table(create_model("alexnet"), 224)
    assert sum(r.params for r in rows) == 61_100_840
    assert (
        round(sum(r.macs for r in rows) / 1e9, 3) == 0.714
    )  # torchvision's published 0.714 GFLOPS
    assert (
        rows[0].out_shape == (64, 55, 55)
        and rows[-1].kind == "softmax"
        and rows[-1].out_shape == (1000,)
    )
    assert [r.kind for r in rows].count("conv") == 5 and [r.kind for r in rows].count(
        "connected"
    ) == 3


@pytest.mark.parametrize(
    "name, params",
    [
        ("deeplabv3-mobilenet-v3-large", 11_029_328),
        ("deeplabv3-resnet50", 42_004_074),
        ("deeplabv3-resnet101", 60_996_202),
    ],
)
def test_deeplabv3_totals_and_shapes(name, params):
    rows = anatomy.layer_table(create_model(name), 128)
    assert (
        sum(r.params for r in rows) == params
    )  # torchvision's published counts (aux head included)
    assert (
        rows[0].in_shape == (3, 128, 128) and rows[-1].kind != "softmax"
    )  # a segmenter ends in score maps
    assert any(r.kind == "conv" and r.out_shape[0] == 21 for r in rows)
