"""Plain RRF fused inside the store: one call returns the page (see :meth:`VectorStore.query_rrf`).

Taken for ``rrf`` requests that need no per-member evidence (no explain, cluster re-rank,
per-cluster cap or MMR) when ``search.store_rrf`` is on and the backend can fuse. The candidates
and scores are those of :func:`domain.fusion.rrf` (each member's top ``depth``, summed
``1 / (k + rank)``, in float32); exact score ties are ordered by store key instead of best rank, and
``matched_members`` is 0 (the store does not say which members fetched a hit). A failing or slow
store call, or a backend without fusion, returns None: the caller then queries member by member,
which also reports partial results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import numpy as np

from services.search.hits import attributes_of
from services.search.model import ResultHit
from services.search.plan import Plan
from services.search.retrieval import Deadline, in_thread, raise_unless_store_failure
from services.storage.port import MemberQuery, ScoredPoint, VectorStore

log = logging.getLogger("vitrine.search")

TIE_MARGIN = 8  # fused hits fetched past the page, so that ties at its end are ordered here
TIME_SHARE = 0.25  # of the time left; the rest stays for the member-by-member path


def can_fuse_in_store(plan: Plan, enabled: bool) -> bool:
    """Whether the request is plain rrf with an integer k and nothing that needs member evidence."""
    return (
        enabled
        and plan.method.kind == "rrf"
        and float(plan.method.k).is_integer()
        and not plan.explain
        and not plan.cluster_rerank
        and plan.max_per_cluster <= 0
        and plan.mmr_lambda <= 0.0
    )


async def fuse_in_store(
    store: VectorStore,
    collection: str,
    resolve: bool,
    vectors: Mapping[str, np.ndarray],
    plan: Plan,
    deadline: Deadline,
    exclude_key: str | None = None,
) -> tuple[str, list[ResultHit]] | None:
    """``(collection that answered, page)`` fused by the store, or None to take the member path.

    With ``resolve`` the alias is resolved in the same worker thread as the query.
    """
    if any(member not in vectors for member in plan.members):
        return None
    queries = [MemberQuery(member, vectors[member], plan.depth) for member in plan.members]
    limit = plan.end + TIE_MARGIN + (1 if exclude_key else 0)

    def fused() -> tuple[str, list[ScoredPoint] | None]:
        target = (store.resolve_alias(collection) or collection) if resolve else collection
        return target, store.query_rrf(target, queries, int(plan.method.k), limit, plan.filters or None)

    call = in_thread(fused)
    done, _ = await asyncio.wait({call}, timeout=deadline.remaining() * TIME_SHARE)
    if not done:
        call.cancel()  # the thread finishes on its own; its result is discarded
        return None
    if call.exception() is not None:
        raise_unless_store_failure(call.exception())
        log.warning(
            "store-side fusion failed; querying members one by one", extra={"error": repr(call.exception())}
        )
        return None
    target, points = call.result()
    if points is None:
        return None
    return target, page_of(points, plan, exclude_key)


def page_of(points: list[ScoredPoint], plan: Plan, exclude_key: str | None = None) -> list[ResultHit]:
    """The page of store-fused hits: ordered by score then key, query item and low scores dropped."""
    ranked = sorted((p for p in points if p.key != exclude_key), key=lambda p: (-p.score, p.key))
    if plan.min_score != 0.0:
        ranked = [p for p in ranked if p.score >= plan.min_score]
    return [
        ResultHit(id=p.id, score=p.score, attributes=attributes_of(p.payload))
        for p in ranked[plan.offset : plan.end]
    ]


__all__ = ["TIE_MARGIN", "can_fuse_in_store", "fuse_in_store", "page_of"]
