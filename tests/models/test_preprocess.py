"""Preprocessing equals torchvision's ``weights.transforms()`` tensor for tensor."""

from __future__ import annotations

import pytest
import torch

from explorer.models.registry import get_spec, published_weights


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
