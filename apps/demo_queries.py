"""The demo's sample queries: text, image and text+image, printed with member explanations.

Each query names what a right answer looks like (an articleType, or the query item itself), so the
demo reports how many of the top hits are on target instead of only printing them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from services.search.cli import format_table
from vitrine.v1 import search_pb2, search_pb2_grpc

TOP_K = 5


@dataclass(frozen=True)
class DemoQuery:
    """One sample query and the articleTypes that count as on target."""

    title: str
    text: str = ""
    image_of: str = ""  # articleType whose first catalog item is the query image
    expect: tuple[str, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)


FASHION_QUERIES = (
    DemoQuery("text", text="white polo t-shirts", expect=("Tshirts",)),
    DemoQuery("text", text="watches for men", expect=("Watches",)),
    DemoQuery("text", text="red floral summer dress", expect=("Dresses",)),
    DemoQuery(
        "text + filter gender=Women",
        text="black leather handbag",
        expect=("Handbags",),
        filters={"gender": "Women"},
    ),
    DemoQuery("image", image_of="Sports Shoes", expect=("Sports Shoes", "Casual Shoes", "Formal Shoes")),
    DemoQuery("image + text", text="blue", image_of="Jeans", expect=("Jeans",)),
)
SYNTHETIC_QUERIES = (
    DemoQuery("text", text="a red dress", expect=("Dresses",)),
    DemoQuery("text", text="watches for men", expect=("Watches",)),
    DemoQuery("image", image_of="Casual Shoes", expect=("Casual Shoes",)),
    DemoQuery("image + text", text="green", image_of="Tshirts", expect=("Tshirts",)),
)


def first_item(catalog: Path, article_type: str) -> tuple[str, bytes]:
    """(id, image bytes) of the first catalog item of ``article_type`` with an image."""
    with (catalog / "styles.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = catalog / "images" / f"{row['id']}.jpg"
            if row.get("articleType") == article_type and path.exists():
                return row["id"], path.read_bytes()
    raise LookupError(f"no {article_type} item with an image in {catalog}")


def on_target(response: search_pb2.SearchResponse, expect: tuple[str, ...]) -> int:
    """How many hits have one of the expected articleTypes."""
    return sum(1 for hit in response.hits if hit.attributes.get("articleType") in expect)


async def run_queries(address: str, catalog: Path, synthetic: bool) -> bool:
    """Run and print every sample query; True when each has at least one on-target hit."""
    queries = SYNTHETIC_QUERIES if synthetic else FASHION_QUERIES
    all_ok = True
    async with grpc.aio.insecure_channel(address) as channel:
        stub = search_pb2_grpc.SearchStub(channel)
        for query in queries:
            image, label = b"", query.text
            if query.image_of:
                try:
                    item_id, image = first_item(catalog, query.image_of)
                except LookupError as exc:  # a catalog without that category: say so, go on
                    print(f"\n{query.title}: skipped ({exc})")
                    all_ok = False
                    continue
                label = f"[image of {query.image_of} #{item_id}]" + (
                    f" + {query.text!r}" if query.text else ""
                )
            request = search_pb2.SearchRequest(
                text=query.text, image=image, top_k=TOP_K, explain=True, filters=query.filters
            )
            response = await stub.Search(request, timeout=60)
            good = on_target(response, query.expect)
            all_ok &= good > 0
            print(
                f"\n{query.title}: {label}  ->  {good}/{len(response.hits)} hits are {'/'.join(query.expect)}"
            )
            print(format_table(response, explain=True))
    return all_ok
