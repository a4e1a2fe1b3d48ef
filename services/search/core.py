"""The search core: embed the query, query each member, fuse, re-rank, page. Plain Python.

Pipeline of one request (see :mod:`domain.fusion` and :mod:`domain.rerank`)::

    validate -> embed (text and/or image; mixed per member) -> [image query: expand with the
    fused neighbours of a first round] -> one store query per member
    (depth = max(min_candidates, (offset + top_k) * overfetch), same filters) -> fuse
    -> [drop the query item] -> [cluster re-rank] -> [min_score] -> [max_per_cluster] -> [MMR]
    -> slice [offset : offset + top_k] -> attributes (+ member evidence when explain)

Text and image query embeddings are cached (:mod:`services.search.query_cache`) per bundle.

The request deadline (:func:`services.common.deadlines.remaining`, which the server interceptor
records for every call; capped by ``rpc_timeout_s``) bounds the embedder call and the store
queries. Members that fail or miss the deadline are reported as missing (``partial``); when no
member answers the core raises instead of returning an empty page.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from domain.bundle import Bundle
from domain.calibration import load_calibration
from domain.fusion import FusedHit, RankedHit, parse_fusion
from domain.lexical import LEXICAL_MEMBER, SparseVector, ensemble_members, lexical_spec, query_words
from domain.payload import CLUSTER_FIELD
from domain.query_vectors import image_query_vector
from domain.rerank import cap_per_cluster, cluster_of, cluster_rerank, mmr
from domain.schema import FASHION_SCHEMA, CatalogSchema
from services.common.config import SearchConfig
from services.common.deadlines import remaining
from services.search.errors import ItemNotFound, SearchDeadlineExceeded, SearchValidationError
from services.search.expansion import expand_image_query
from services.search.facets import check_facets, count_facets, not_indexed, store_facets
from services.search.hits import attributes_of, clusters_by_key, joint_vector, ranked_hits, result_hit
from services.search.lexical import lexical_query, page_coverage, without_lexical
from services.search.model import (
    FacetsQuery,
    FacetsResult,
    ResultHit,
    SearchOptions,
    SearchQuery,
    SearchResult,
    SimilarQuery,
)
from services.search.plan import Plan, check_config, fused_limit, make_plan, text_weight, with_text_share
from services.search.query_cache import QueryCache
from services.search.query_embedding import EmbedClient, QueryEmbedding
from services.search.retrieval import Deadline, call_store, query_members
from services.search.store_fusion import can_fuse_in_store, fuse_in_store
from services.storage.port import FieldNotIndexed, StoredPoint, VectorStore, point_id

# The payload that cluster re-ranking reads from every hit; plain ranking reads none.
CLUSTER_FIELDS = (CLUSTER_FIELD,)
PAGE_FETCH_RESERVE_S = 0.05  # of the deadline, kept for that fetch when a member query is slow


class SearchCore:
    """Search, more-like-this and item lookup over one collection (or alias) of one bundle."""

    def __init__(
        self,
        cfg: SearchConfig,
        store: VectorStore,
        bundle: Bundle,
        embedder: EmbedClient,
        collection: str,
        schema: CatalogSchema = FASHION_SCHEMA,
        cache: QueryCache | None = None,
    ) -> None:
        """``cache``: the query embedding cache (default: one sized by ``cfg.query_cache_*``)."""
        check_config(cfg)
        self.schema = schema
        # a bad bundle default fails at startup
        parse_fusion(bundle.fusion.method, ensemble_members(bundle))
        self.lexical = lexical_spec(bundle.extra)  # None: the bundle has no lexical member
        self.calibration = load_calibration(bundle.extra)  # None: hits carry no relevance
        self.cfg = cfg
        self.store = store
        self.bundle = bundle
        self.embedder = embedder
        self.collection = collection
        self.cache = (
            cache
            if cache is not None
            else QueryCache(cfg.query_cache_size, cfg.query_cache_ttl_s, cfg.query_cache_casefold)
        )
        self.bundle_id = f"{bundle.name}-{bundle.version}"
        self.cache.use_bundle(self.bundle_id)
        self.colour_dims = {m.name: m.colour_dims for m in bundle.members if m.colour_dims}
        self.query_embedding = QueryEmbedding(embedder, self.cache, self.bundle_id, self.colour_dims)

    def _deadline(self) -> Deadline:
        """Time for embedding and store calls: the caller's deadline less the reply reserve, capped."""
        timeout = remaining()
        if timeout is None:
            budget = self.cfg.rpc_timeout_s
        else:
            budget = min(timeout - self.cfg.reply_reserve_s, self.cfg.rpc_timeout_s)
        if budget <= 0:
            raise SearchDeadlineExceeded("deadline exceeded before the request started")
        return Deadline(budget)

    async def search(self, query: SearchQuery) -> SearchResult:
        """Text and/or image search within the request deadline."""
        weight = text_weight(query.text, query.image, query.text_weight)
        plan = with_text_share(make_plan(query.options, self.cfg, self.bundle, schema=self.schema), weight)
        plan, skipped, vectors = lexical_query(plan, query.text)
        deadline = self._deadline()
        embedded, pending = await self.query_embedding.embed(query, weight, plan.members, deadline)
        if query.image and not query.text.strip():
            embedded = await self._expand(plan, embedded, deadline)
        words = query_words(query.text) if LEXICAL_MEMBER in vectors else frozenset()
        result = await self._execute(plan, vectors | embedded, deadline, skipped=skipped, words=words)
        self.query_embedding.remember(result.collection, pending)
        return result

    async def facets(self, query: FacetsQuery) -> FacetsResult:
        """Value counts of ``query.fields``: the store's facet without a query, else over the fused
        candidates (``facet_candidates`` of them, ranked as Search ranks them)."""
        fields, limit = check_facets(query, self.schema)
        options = SearchOptions(filters=query.filters, conditions=query.conditions)
        if not query.text.strip() and not query.image:
            plan = make_plan(options, self.cfg, self.bundle, schema=self.schema)
            deadline = self._deadline()
            collection = await self._collection(deadline)
            try:
                counted = await call_store(
                    deadline,
                    "counting facets",
                    store_facets,
                    self.store,
                    collection,
                    fields,
                    limit,
                    plan.filters,
                )
            except FieldNotIndexed as exc:
                raise not_indexed(query, exc) from exc
            return FacetsResult(counted)
        weight = text_weight(query.text, query.image, None)
        plan = with_text_share(make_plan(options, self.cfg, self.bundle, schema=self.schema), weight)
        plan, _, vectors = lexical_query(plan, query.text)
        # the depth Search uses for a page of facet_candidates hits
        depth = max(self.cfg.min_candidates, math.ceil(self.cfg.facet_candidates * self.cfg.overfetch))
        plan = dataclasses.replace(plan, depth=depth)
        deadline = self._deadline()
        embedded, pending = await self.query_embedding.embed(
            SearchQuery(query.text, query.image), weight, plan.members, deadline
        )
        vectors |= embedded
        answered = await query_members(
            self.store,
            self.collection,
            vectors,
            plan.members,
            plan.depth,
            plan.filters or None,
            deadline,
            payload_fields=fields,
            resolve=True,
        )
        answered.raise_if_empty()
        self.query_embedding.remember(answered.collection, pending)
        lists = {m: ranked_hits(answered.lists[m], m, with_clusters=False) for m in answered.lists}
        fused = plan.method.fuse(lists, plan.depth, limit=self.cfg.facet_candidates)
        payloads = {p.key: p.payload for points in answered.lists.values() for p in points}
        counted = count_facets([payloads[h.id] for h in fused], fields, limit)
        return FacetsResult(counted, candidates=len(fused))

    async def search_vectors(self, vectors: Mapping[str, np.ndarray], options: SearchOptions) -> SearchResult:
        """Search with ready query vectors ``{member: vector}`` (no embedding; for benchmarks)."""
        plan = make_plan(options, self.cfg, self.bundle, schema=self.schema)
        skipped = {}
        if LEXICAL_MEMBER in plan.members and LEXICAL_MEMBER not in vectors:
            plan, skipped = without_lexical(plan, "no lexical query vector was given")
        return await self._execute(plan, vectors, self._deadline(), skipped=skipped)

    async def more_like_this(self, query: SimilarQuery) -> SearchResult:
        """Products near the stored vectors of ``query.id`` (itself left out unless include_self)."""
        if not query.id.strip():
            raise SearchValidationError("id", "required")
        plan = make_plan(
            query.options, self.cfg, self.bundle, drop_one=not query.include_self, schema=self.schema
        )
        plan, skipped, _ = lexical_query(plan, "", reason="more-like-this has no query text")
        deadline = self._deadline()
        collection = await self._collection(deadline)
        found: list[StoredPoint] = await call_store(
            deadline, "reading the query item", self.store.retrieve, collection, [query.id], True
        )
        if not found:
            raise ItemNotFound(query.id, collection)
        vectors = {  # an image query: about what the item is, not its colour (domain.colour_channel)
            m: image_query_vector(np.asarray(v, dtype=np.float32), self.colour_dims.get(m, 0))
            for m, v in found[0].vectors.items()
            if not isinstance(v, SparseVector)
        }
        vectors = await self._expand(plan, vectors, deadline, point_id(query.id), collection)
        exclude = None if query.include_self else query.id
        return await self._execute(
            plan, vectors, deadline, exclude=exclude, collection=collection, skipped=skipped
        )

    async def get_items(self, ids: Sequence[str]) -> list[ResultHit]:
        """Stored attributes of the given product ids, in the order asked; unknown ids are left out."""
        if len(ids) > self.cfg.max_top_k:
            raise SearchValidationError("ids", f"at most {self.cfg.max_top_k} ids per call, got {len(ids)}")
        for i, product_id in enumerate(ids):
            if not product_id.strip():
                raise SearchValidationError(f"ids[{i}]", "empty id")
        if not ids:
            return []
        deadline = self._deadline()
        collection = await self._collection(deadline)
        points: list[StoredPoint] = await call_store(
            deadline, "reading items", self.store.retrieve, collection, list(ids), False
        )
        return [ResultHit(id=p.id, score=0.0, attributes=attributes_of(p.payload)) for p in points]

    async def _expand(
        self, plan: Plan, vectors: dict, deadline: Deadline, excluded: str | None = None, collection: str = ""
    ) -> dict[str, np.ndarray]:
        """Image query vectors expanded with a first round's fused neighbours (``cfg.image_expansion``)."""
        name = collection or self.collection
        return await expand_image_query(
            self.store, name, vectors, plan, self.cfg, self.colour_dims, deadline, excluded
        )

    async def _collection(self, deadline: Deadline) -> str:
        """The collection behind the configured alias (the name itself when it is no alias)."""
        resolve, inline = self.store.resolve_alias, self.store.holds_interpreter
        target = await call_store(deadline, "resolving the alias", resolve, self.collection, inline=inline)
        return target or self.collection

    async def _execute(
        self,
        plan: Plan,
        vectors: Mapping[str, np.ndarray],
        deadline: Deadline,
        exclude: str | None = None,
        collection: str | None = None,
        skipped: Mapping[str, str] | None = None,
        words: frozenset[str] = frozenset(),
    ) -> SearchResult:
        """Query the members, fuse, re-rank and cut the page; ``words`` (the text query's) feed the
        calibrated relevance.

        Members rank on store keys and scores only (no payload read) unless clusters are needed
        for re-ranking; the page's points are then read by key in one call.
        """
        excluded = point_id(exclude) if exclude is not None else None
        skipped = dict(skipped or {})
        # relevance needs each member's evidence, which the store's fusion does not report
        if self.calibration is None and can_fuse_in_store(plan, self.cfg.store_rrf):
            name = collection or self.collection
            fused_by_store = await fuse_in_store(
                self.store, name, collection is None, vectors, plan, deadline, excluded
            )
            if fused_by_store is not None:
                target, hits = fused_by_store
                return SearchResult(
                    hits=hits, fusion=plan.method.name, collection=target, skipped_members=skipped
                )
        needs_clusters = plan.cluster_rerank or plan.max_per_cluster > 0
        answered = await query_members(
            self.store,
            collection or self.collection,
            vectors,
            plan.members,
            plan.depth,
            plan.filters or None,
            deadline,
            payload_fields=CLUSTER_FIELDS if needs_clusters else (),
            reserve_s=PAGE_FETCH_RESERVE_S,
            resolve=collection is None,
        )
        answered.raise_if_empty()
        collection = answered.collection
        lists = {
            m: ranked_hits(answered.lists[m], m, with_clusters=needs_clusters)
            for m in plan.members
            if m in answered.lists
        }
        fused = [
            h for h in plan.method.fuse(lists, plan.depth, fused_limit(plan, excluded)) if h.id != excluded
        ]
        fused = self._rerank(plan, fused, lists, clusters_by_key(answered.lists) if needs_clusters else {})
        if plan.mmr_lambda > 0.0 and fused:
            fused = await self._diversify(plan, fused, collection, lists, deadline)
        page = fused[plan.offset : plan.end]
        missing = answered.missing(plan.members)
        points = await self._page_points(collection, [h.id for h in page], deadline)
        lexical = vectors.get(LEXICAL_MEMBER)
        query_terms = len(lexical.indices) if isinstance(lexical, SparseVector) else 0
        coverage = page_coverage(self.lexical, words, page, points) if self.calibration else None
        relevance = self._relevance(plan, page, lists, query_terms, coverage)
        # a page hit deleted between the query and the read is left out
        hits = [
            result_hit(h, points[h.id], plan.explain, relevance[i])
            for i, h in enumerate(page)
            if h.id in points
        ]
        threshold = self._threshold(plan)
        return SearchResult(
            hits=hits,
            partial=bool(missing),
            missing_members=missing,
            fusion=plan.method.name,
            collection=collection,
            no_good_match=threshold > 0.0 and not any(h.relevance >= threshold for h in hits),
            skipped_members=skipped,
            relevance_threshold=threshold,
        )

    def _relevance(
        self,
        plan: Plan,
        page: Sequence[FusedHit],
        lists: Mapping[str, Sequence[RankedHit]],
        query_terms: int,
        coverage: Sequence[float] | None,
    ) -> list[float]:
        """Calibrated P(relevant) per page hit (its position counted from the first page); 0 without."""
        if self.calibration is None:
            return [0.0] * len(page)
        return self.calibration.relevance(
            page, lists, query_terms, first_position=plan.offset + 1, coverage=coverage
        )

    def _threshold(self, plan: Plan) -> float:
        """The relevance a page must reach once: the request's, else the bundle's (0 = none)."""
        if self.calibration is None:
            return 0.0
        return plan.min_relevance or self.calibration.threshold

    async def _page_points(
        self, collection: str, keys: Sequence[str], deadline: Deadline
    ) -> dict[str, StoredPoint]:
        """The page's points (whole payloads) by store key."""
        if not keys:
            return {}
        fetch, inline = self.store.retrieve_keys, self.store.holds_interpreter
        points: list[StoredPoint] = await call_store(
            deadline, "fetching the page's payloads", fetch, collection, keys, inline=inline
        )
        return {p.key: p for p in points}

    def _rerank(
        self,
        plan: Plan,
        fused: list[FusedHit],
        lists: Mapping[str, Sequence[RankedHit]],
        clusters: Mapping[str, Mapping[str, int]],
    ) -> list[FusedHit]:
        """Cluster boost, score threshold and per-cluster cap, in that order.

        ``clusters`` is ``{store key: {member: cluster id}}`` (read only when boost or cap is on).
        """
        if plan.cluster_rerank:
            fused = cluster_rerank(
                fused, lists, boost=self.cfg.cluster_boost, top_n=self.cfg.cluster_top_n, clusters=clusters
            )
        if plan.min_score != 0.0:
            fused = [h for h in fused if h.score >= plan.min_score]
        if plan.max_per_cluster > 0:
            reference = plan.members[0]
            fused = cap_per_cluster(fused, plan.max_per_cluster, lambda h: cluster_of(h, reference, clusters))
        return fused

    async def _diversify(
        self,
        plan: Plan,
        fused: list[FusedHit],
        collection: str,
        lists: Mapping[str, Sequence[RankedHit]],
        deadline: Deadline,
    ) -> list[FusedHit]:
        """MMR over the top ``depth`` candidates; similarity = mean cosine over the answering members."""
        pool = fused[: plan.depth]
        points: list[StoredPoint] = await call_store(
            deadline,
            "reading vectors for MMR",
            self.store.retrieve_keys,
            collection,
            [h.id for h in pool],
            True,
        )
        members = [m for m in plan.members if m in lists and m != LEXICAL_MEMBER]
        vectors = {p.key: joint_vector(p, members, self.bundle) for p in points}
        return mmr(pool, vectors, plan.mmr_lambda, limit=plan.end)


__all__ = ["EmbedClient", "SearchCore"]
