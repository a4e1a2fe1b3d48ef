"""Edge query requests for member queries: one nearest-neighbour search per member, as a request
of a batch or as a prefetch of a fused query."""

from __future__ import annotations

from collections.abc import Sequence

import qdrant_edge as qe

from services.storage.edge_filters import edge_vector
from services.storage.port import MemberQuery


def nearest(query: MemberQuery) -> qe.Query:
    """The member's nearest-neighbour query on its named vector."""
    return qe.Query.Nearest(edge_vector(query.vector, query.member), using=query.member)


def member_requests(
    queries: Sequence[MemberQuery],
    params: Sequence[qe.SearchParams | None],
    flt: qe.Filter | None,
    payload: object,
) -> list[qe.QueryRequest]:
    """One request per member query (``params`` in the same order), for ``query_batch``."""
    return [
        qe.QueryRequest(limit=q.limit, query=nearest(q), filter=flt, with_payload=payload, params=p)
        for q, p in zip(queries, params, strict=True)
    ]


def member_prefetches(
    queries: Sequence[MemberQuery], params: Sequence[qe.SearchParams | None], flt: qe.Filter | None
) -> list[qe.Prefetch]:
    """One prefetch per member query, for a query the store fuses itself."""
    return [
        qe.Prefetch(limit=q.limit, query=nearest(q), filter=flt, params=p)
        for q, p in zip(queries, params, strict=True)
    ]
