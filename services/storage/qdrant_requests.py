"""qdrant-client query requests for member queries: one nearest-neighbour search per member, as a
request of a batch or as a prefetch of a fused query; and the operations of an alias swap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qdrant_client import models

from services.storage.port import MemberQuery
from services.storage.qdrant_connection import client_vector


def member_requests(
    queries: Sequence[MemberQuery],
    params: Sequence[models.SearchParams | None],
    flt: models.Filter | None,
    payload: bool | list[str],
) -> list[models.QueryRequest]:
    """One request per member query (``params`` in the same order), for ``query_batch_points``."""
    return [
        models.QueryRequest(
            query=client_vector(q.vector, q.member), using=q.member, filter=flt, limit=q.limit,
            with_payload=payload, params=p,
        )
        for q, p in zip(queries, params, strict=True)
    ]  # fmt: skip


def member_prefetches(
    queries: Sequence[MemberQuery], params: Sequence[models.SearchParams | None], flt: models.Filter | None
) -> list[models.Prefetch]:
    """One prefetch per member query, for a query the server fuses itself."""
    return [
        models.Prefetch(
            query=client_vector(q.vector, q.member), using=q.member, filter=flt, limit=q.limit, params=p
        )
        for q, p in zip(queries, params, strict=True)
    ]


def alias_swap(alias: str, collection: str, previous: str | None) -> list[Any]:
    """The ``update_collection_aliases`` operations that point ``alias`` at ``collection`` (deleting
    it first where it exists), applied by the server in one step."""
    operations: list[Any] = []
    if previous is not None:
        operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
    create = models.CreateAlias(collection_name=collection, alias_name=alias)
    return [*operations, models.CreateAliasOperation(create_alias=create)]
