"""Image query expansion: an image query runs twice, the second time with every member's vector
averaged with its first round's top fused neighbours (:func:`domain.query_vectors.expanded_query_vector`).

Applies to Search with an image and no text, and to MoreLikeThis, when ``search.image_expansion``
is above 0 (the number of neighbours). The first round queries the same members with the same
filters and fuses as the request does, ``search.min_candidates`` deep whatever the page (so every
page of one query expands it alike); the neighbours' stored vectors are read in one call. Members
the first round missed, or whose neighbours were not read, keep their vector.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from domain.lexical import SparseVector
from domain.query_vectors import expanded_query_vector
from services.common.config import SearchConfig
from services.search.hits import ranked_hits
from services.search.plan import Plan
from services.search.retrieval import Deadline, call_store, query_members
from services.storage.port import StoredPoint, VectorStore


async def expand_image_query(
    store: VectorStore,
    collection: str,
    vectors: Mapping[str, np.ndarray],
    plan: Plan,
    cfg: SearchConfig,
    colour_dims: Mapping[str, int],
    deadline: Deadline,
    excluded: str | None = None,
) -> dict[str, np.ndarray]:
    """The image query ``vectors`` expanded with the first ``cfg.image_expansion`` hits of a first
    round that fuses ``cfg.min_candidates`` hits per member (``excluded``, a store key, never
    counts). ``collection`` may be an alias."""
    neighbours, depth = cfg.image_expansion, cfg.min_candidates
    dense = {m: v for m, v in vectors.items() if not isinstance(v, SparseVector)}
    members = [m for m in plan.members if m in dense]
    if neighbours <= 0 or not members:
        return dict(vectors)
    answered = await query_members(
        store,
        collection,
        dense,
        members,
        depth,
        plan.filters or None,
        deadline,
        payload_fields=(),
        reserve_s=deadline.remaining(),  # at most half the time left: the second round needs the rest
        resolve=True,
    )
    lists = {m: ranked_hits(answered.lists[m], m, with_clusters=False) for m in answered.lists}
    if not lists:
        return dict(vectors)  # the second round reports what failed
    fused = plan.method.fuse(lists, depth, neighbours + 1)
    keys = [h.id for h in fused if h.id != excluded][:neighbours]
    if not keys:
        return dict(vectors)
    fetch, inline = store.retrieve_keys, store.holds_interpreter
    points: list[StoredPoint] = await call_store(
        deadline, "reading the neighbours' vectors", fetch, answered.collection, keys, True, inline=inline
    )
    out = dict(vectors)
    for m in lists:
        stored = [p.vectors[m] for p in points if m in p.vectors]
        if stored:
            rows = np.asarray(stored, dtype=np.float32)
            out[m] = expanded_query_vector(dense[m], rows, colour_dims.get(m, 0))
    return out


__all__ = ["expand_image_query"]
