"""The embedder core: vectors, member selection, validation and micro-batching."""

from __future__ import annotations

import asyncio
import dataclasses
import os

import numpy as np
import pytest

from services.embedder.core import EmbedderCore
from services.embedder.encoder import default_threads
from services.embedder.errors import InvalidInput, Overloaded
from tests.support.embedder import EMBEDDER_TEST_CFG as CFG
from tests.support.images import solid


async def test_vectors_are_normalized_and_per_member(core):
    result = await core.embed_images([solid(), solid((0, 0, 255))])
    assert result.members == ("m1", "m2")
    assert len(result.vectors) == 2
    for vectors in result.vectors:
        assert vectors["m1"].shape == (32,) and vectors["m2"].shape == (48,)
        for v in vectors.values():
            assert v.dtype == np.float32
            assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert not np.allclose(result.vectors[0]["m1"], result.vectors[1]["m1"])


async def test_member_subset_in_request_order(core):
    result = await core.embed_texts(["red dress"], ["m2", "m1", "m2"])
    assert result.members == ("m2", "m1")
    assert set(result.vectors[0]) == {"m1", "m2"}


async def test_unknown_member_lists_valid_ones(core):
    with pytest.raises(InvalidInput) as err:
        await core.embed_texts(["x"], ["m1", "nope"])
    assert err.value.field == "members[1]"
    assert "'m1'" in str(err.value) and "'m2'" in str(err.value)


@pytest.mark.parametrize(
    ("texts", "field"), [([], "texts"), (["ok", "   "], "texts[1]"), (["a\x00b"], "texts[0]")]
)
async def test_bad_texts(core, texts, field):
    with pytest.raises(InvalidInput) as err:
        await core.embed_texts(texts)
    assert err.value.field == field


async def test_too_many_items(core):
    with pytest.raises(InvalidInput, match="over the limit"):
        await core.embed_texts(["x"] * (CFG.max_items + 1))


async def test_long_text_is_truncated_with_a_warning(core):
    result = await core.embed_texts(["short", "red " * 200])
    assert len(result.vectors) == 2
    assert len(result.warnings) == 1 and result.warnings[0].startswith("texts[1]: truncated")


async def test_one_bad_image_fails_the_request_with_its_index(core):
    with pytest.raises(InvalidInput) as err:
        await core.embed_images([solid(), b"junk", solid()])
    assert err.value.field == "images[1]"
    assert core._images.on_the_way == 0  # the failed request no longer holds batches back


async def test_concurrent_requests_share_batches_and_match_unbatched(encoder):
    sizes: list[int] = []
    original = encoder.encode_images

    def counting(items):
        sizes.append(len(items))
        return original(items)

    batched = EmbedderCore(encoder, CFG)
    batched._images._run_batch = counting  # spy on the real batch function
    images = [solid((i * 20, 255 - i * 20, 60)) for i in range(12)]
    try:
        results = await asyncio.gather(*(batched.embed_images([img]) for img in images))
    finally:
        await batched.close()
    assert len(sizes) < len(images), f"12 concurrent requests ran in {len(sizes)} batches"
    assert max(sizes) > 1
    solo = EmbedderCore(encoder, CFG, batching=False)
    try:
        for img, got in zip(images, results, strict=True):
            want = (await solo.embed_images([img])).vectors[0]
            for m in ("m1", "m2"):
                np.testing.assert_allclose(got.vectors[0][m], want[m], atol=1e-5)
    finally:
        await solo.close()


async def test_full_queue_is_refused_fast(encoder):
    tight = EmbedderCore(encoder, dataclasses.replace(CFG, max_queue=4, max_items=32))
    try:
        with pytest.raises(Overloaded):
            await tight.embed_texts(["a red dress"] * 5)
    finally:
        await tight.close()


def test_default_threads_leave_the_decode_workers_their_cores():
    cores = len(os.sched_getaffinity(0))
    assert default_threads(0) == cores
    assert default_threads(1) == max(1, cores - 1)
    assert default_threads(cores + 4) == 1, "never fewer than one model thread"
