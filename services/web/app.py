"""FastAPI gateway: JSON endpoints over Search/Embedder gRPC, item images, and the static page."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import grpc
from fastapi import FastAPI, File, Form, Header, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from google.protobuf.json_format import MessageToDict

from domain.schema import FASHION_SCHEMA, CatalogSchema
from services.common.channels import open_channel
from services.common.config import WebConfig
from services.search.requests import parse_filters, request_options
from services.storage.blobs import BlobStore
from services.web.images import ImageNotFound, check_item_id, etag_matches, image_source
from vitrine.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc, search_pb2, search_pb2_grpc

STATIC = Path(__file__).parent / "static"

GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def query_filters(items: list[str]) -> dict[str, str]:
    """``field=value`` query parameters as SearchRequest.filters; a malformed one is a 400."""
    try:
        return parse_filters(items)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def page_search(
    text: str,
    top_k: int,
    offset: int,
    fusion: str,
    members: list[str],
    filters: list[str],
    *,
    explain: bool = True,
    conditions: Sequence[common_pb2.Condition] = (),
) -> search_pb2.SearchRequest:
    """A SearchRequest from the page's parameters (``filters`` as ``field=value``; malformed: 400)."""
    options = request_options(
        top_k=top_k,
        offset=offset,
        filters=query_filters(filters),
        fusion=fusion,
        members=members,
        explain=explain,
        conditions=conditions,
    )
    return search_pb2.SearchRequest(text=text, **options)


SIDEBAR_FACETS = ("brand", "baseColour", "articleType", "gender")


def price_conditions(price_min: str, price_max: str) -> list[common_pb2.Condition]:
    """The sidebar's price range as a Condition (empty bounds are left out)."""
    bounds: dict[str, float] = {}
    for name, text in (("gte", price_min), ("lte", price_max)):
        if text.strip():
            try:
                bounds[name] = float(text)
            except ValueError:
                raise HTTPException(
                    400, f"price_{'min' if name == 'gte' else 'max'}: not a number: {text!r}"
                ) from None
    return [common_pb2.Condition(field="price", **bounds)] if bounds else []


def image_url(item_id: str) -> str:
    """The gateway URL of a product's image (the id percent-encoded)."""
    return f"/api/items/{quote(item_id, safe='')}/image"


def hits_json(response: search_pb2.SearchResponse) -> dict[str, Any]:
    """SearchResponse as JSON (field names as in the proto)."""
    data = MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for hit in data.get("hits", []):
        hit["image_url"] = image_url(hit["id"])
    return data


def item_json(hit: search_pb2.Hit) -> dict[str, Any]:
    """A stored product for the metadata panel: its text, its attributes, and its image URL."""
    attributes = dict(hit.attributes)
    text = attributes.pop("text", "")
    for internal in ("id", "image_uri"):
        attributes.pop(internal, None)
    return {
        "id": hit.id,
        "text": text,
        "attributes": dict(sorted(attributes.items())),
        "image_url": image_url(hit.id),
    }


async def _call(coro) -> Any:
    try:
        return await coro
    except grpc.aio.AioRpcError as exc:
        raise HTTPException(
            GRPC_TO_HTTP.get(exc.code(), 502), f"{exc.code().name}: {exc.details()}"
        ) from None


def create_app(
    cfg: WebConfig, blobs: BlobStore | None = None, schema: CatalogSchema = FASHION_SCHEMA
) -> FastAPI:
    """Build the gateway app bound to the Search and Embedder addresses in ``cfg``.

    ``blobs`` is the store ingest keeps pushed image bytes in (read here); without it only
    ``image_uri`` files under ``cfg.image_root`` are served. ``schema`` decides the sidebar facets.
    """
    facet_fields = [f for f in SIDEBAR_FACETS if schema.type_of(f) in ("keyword", "integer", "bool")]
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state["search_channel"] = open_channel(cfg.search_addr, retries=False)
        state["embedder_channel"] = open_channel(cfg.embedder_addr)
        state["search"] = search_pb2_grpc.SearchStub(state["search_channel"])
        state["embedder"] = embedder_pb2_grpc.EmbedderStub(state["embedder_channel"])
        yield
        await state["search_channel"].close()
        await state["embedder_channel"].close()

    app = FastAPI(title="vitrine gateway", lifespan=lifespan)
    max_upload = cfg.max_upload_mb * 1024 * 1024
    image_root = Path(cfg.image_root).resolve()
    cache_control = f"public, max-age={cfg.image_max_age_s}"

    async def run_search(request: search_pb2.SearchRequest) -> dict[str, Any]:
        response = await _call(state["search"].Search(request, timeout=cfg.timeout_s))
        return hits_json(response)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/bundle")
    async def bundle() -> dict[str, Any]:
        info = await _call(
            state["embedder"].GetBundle(embedder_pb2.GetBundleRequest(), timeout=cfg.timeout_s)
        )
        return MessageToDict(info, preserving_proto_field_name=True)

    @app.get("/api/schema")
    async def catalog_schema() -> dict[str, Any]:
        return {
            "fields": dict(schema.fields),
            "facets": facet_fields,
            "price_range": schema.type_of("price") == "float",
        }

    @app.get("/api/facets")
    async def facets(
        q: str = "",
        filters: Annotated[list[str], Query()] = [],  # noqa: B006
        price_min: str = "",
        price_max: str = "",
        limit: int = 8,
    ) -> dict[str, Any]:
        request = search_pb2.FacetsRequest(
            text=q,
            filters=query_filters(filters),
            conditions=price_conditions(price_min, price_max),
            fields=facet_fields,
            limit=limit,
        )
        response = await _call(state["search"].Facets(request, timeout=cfg.timeout_s))
        return MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    @app.get("/api/search")
    async def search_get(
        q: str = "",
        top_k: int = 12,
        offset: int = 0,
        fusion: str = "",
        members: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI query list
        filters: Annotated[list[str], Query()] = [],  # noqa: B006
        explain: bool = True,
    ) -> dict[str, Any]:
        request = page_search(q, top_k, offset, fusion, members, filters, explain=explain)
        return await run_search(request)

    @app.post("/api/search")
    async def search_post(
        image: Annotated[UploadFile | None, File()] = None,
        q: Annotated[str, Form()] = "",
        text_weight: Annotated[float, Form()] = 0.5,
        top_k: Annotated[int, Form()] = 12,
        offset: Annotated[int, Form()] = 0,
        fusion: Annotated[str, Form()] = "",
        members: Annotated[list[str], Form()] = [],  # noqa: B006
        filters: Annotated[list[str], Form()] = [],  # noqa: B006
        price_min: Annotated[str, Form()] = "",
        price_max: Annotated[str, Form()] = "",
    ) -> dict[str, Any]:
        data = await image.read(max_upload + 1) if image is not None else b""
        if len(data) > max_upload:
            raise HTTPException(413, f"image: upload over {cfg.max_upload_mb} MB")
        conditions = price_conditions(price_min, price_max)
        request = page_search(q, top_k, offset, fusion, members, filters, conditions=conditions)
        request.image, request.text_weight = data, text_weight
        return await run_search(request)

    @app.get("/api/items/{item_id}/similar")
    async def more_like_this(
        item_id: str, top_k: int = 12, offset: int = 0, fusion: str = ""
    ) -> dict[str, Any]:
        options = request_options(top_k=top_k, offset=offset, fusion=fusion, explain=True)
        request = search_pb2.MoreLikeThisRequest(id=item_id, **options)
        response = await _call(state["search"].MoreLikeThis(request, timeout=cfg.timeout_s))
        return hits_json(response)

    async def stored_item(item_id: str) -> search_pb2.Hit:
        request = search_pb2.GetItemsRequest(ids=[item_id])
        response = await _call(state["search"].GetItems(request, timeout=cfg.timeout_s))
        found = next((h for h in response.items if h.id == item_id), None)
        if found is None:
            raise HTTPException(404, f"unknown item {item_id!r}: not in the catalog")
        return found

    @app.get("/api/items/{item_id:path}/image", response_model=None)
    async def item_image(item_id: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
        try:
            check_item_id(item_id)
            item = await stored_item(item_id)
            source = await asyncio.to_thread(image_source, item_id, item.attributes, blobs, image_root)
        except ImageNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        headers = {"ETag": source.etag, "Cache-Control": cache_control}
        if etag_matches(if_none_match, source.etag):
            return Response(status_code=304, headers=headers)
        if source.data is not None:
            return Response(source.data, media_type=source.media_type, headers=headers)
        return FileResponse(source.path, media_type=source.media_type, headers=headers)

    @app.get("/api/items/{item_id}")
    async def item(item_id: str) -> dict[str, Any]:
        return item_json(await stored_item(item_id))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
