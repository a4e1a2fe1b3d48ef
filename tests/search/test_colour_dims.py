"""Image queries leave a member's colour channel out (``MemberSpec.colour_dims``); text queries keep it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from domain.bundle import MemberSpec
from services.search.query_cache import QueryCache
from services.search.query_embedding import QueryEmbedding
from services.search.retrieval import Deadline
from services.search.service import bundle_from_info
from vitrine.v1 import common_pb2, embedder_pb2

CHANNEL = 3


def _unit(values: Sequence[float]) -> np.ndarray:
    vector = np.asarray(values, np.float32)
    return vector / np.linalg.norm(vector)


class ChannelEmbedder:
    """In-process embedder stand-in: member "p" carries a 3-dim colour channel, "m" none."""

    text = {"p": _unit([1, 0, 0, 0.2, 0, 0]), "m": _unit([0, 1, 0])}
    image = {"p": _unit([0, 1, 0, 0, 0.3, 0.3]), "m": _unit([1, 0, 0])}

    async def embed_texts(self, texts, members=None, timeout=None):
        return [dict(self.text) for _ in texts]

    async def embed_images(self, images, members=None, timeout=None):
        return [dict(self.image) for _ in images]


def _embedding() -> QueryEmbedding:
    return QueryEmbedding(ChannelEmbedder(), QueryCache(8), "b-1", {"p": CHANNEL})


async def test_image_query_zeroes_the_channel_and_text_query_keeps_it():
    from services.search.model import SearchQuery

    embedding = _embedding()
    image, _ = await embedding.embed(SearchQuery(image=b"x"), 0.0, ["p", "m"], Deadline(5))
    assert not image["p"][-CHANNEL:].any() and np.isclose(np.linalg.norm(image["p"]), 1.0)
    assert np.allclose(image["p"][:-CHANNEL], _unit([0, 1, 0]))
    assert np.array_equal(image["m"], ChannelEmbedder.image["m"]), "a member without a channel is as embedded"
    text, _ = await embedding.embed(SearchQuery(text="red"), 1.0, ["p", "m"], Deadline(5))
    assert np.array_equal(text["p"], ChannelEmbedder.text["p"])
    both, _ = await embedding.embed(SearchQuery(text="red", image=b"x"), 0.5, ["p"], Deadline(5))
    assert both["p"][-CHANNEL:][0] > 0 and both["p"][-CHANNEL:][1:].max() == 0, "colour from the text only"


def test_colour_dims_travel_in_get_bundle():
    info = embedder_pb2.BundleInfo(
        name="b",
        version="1",
        members=[
            common_pb2.Member(name="p", arch="lite0", dim=167, image_size=96, weight=1.0, colour_dims=39)
        ],
    )
    (member,) = bundle_from_info(info).members
    assert member == MemberSpec(name="p", arch="lite0", dim=167, image_size=96, weight=1.0, colour_dims=39)


def test_colour_dims_must_leave_the_member_its_own_dimensions():
    import pytest

    from domain.bundle import BundleError

    with pytest.raises(BundleError, match="member p: colour_dims must be in"):
        MemberSpec(name="p", arch="lite0", dim=39, colour_dims=39).validate()
