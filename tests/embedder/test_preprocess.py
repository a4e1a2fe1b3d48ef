"""Split preprocessing (per-image geometry + per-batch normalization) equals open_clip's transform."""

from __future__ import annotations

import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2

from domain.preprocess import split_transform
from tests.support.images import gradient


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_split_matches_open_clip(mode):
    transform = image_transform_v2(PreprocessCfg(size=48, resize_mode=mode), is_train=False)
    split = split_transform(transform)
    assert split is not None
    images = [gradient((60, 80)), gradient((53, 80)).rotate(90, expand=True)]
    want = torch.stack([transform(img) for img in images])
    got = split.to_batch([split.pixels(img) for img in images])
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_unknown_transform_shape_is_left_alone():
    assert split_transform(lambda img: img) is None
