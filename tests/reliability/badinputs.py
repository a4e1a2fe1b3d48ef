"""Malformed and awkward inputs for the bad-input scenario, each with the status code it must get."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import grpc
import numpy as np
from google.protobuf.message import Message
from PIL import Image

from tests.support.images import encode, gradient, solid
from vitrine.v1 import embedder_pb2, ingest_pb2, search_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
OVER_LIMIT_BYTES = 5 * 1024 * 1024  # the stack under test accepts messages up to 4 MiB


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and carries no pixel data (a decompression-bomb probe)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def truncated_jpeg() -> bytes:
    """A JPEG cut in half: the header parses, the pixels do not."""
    data = encode(gradient((120, 160)), "JPEG")
    return data[: len(data) // 2]


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG (print catalogs)."""
    return encode(gradient().convert("CMYK"), "JPEG")


def sixteen_bit_png() -> bytes:
    """A 16-bit grayscale PNG."""
    ramp = np.linspace(0, 65535, 60 * 80, dtype=np.uint16).reshape(80, 60)
    return encode(Image.fromarray(ramp), "PNG")


def animated_gif() -> bytes:
    """A three-frame animated GIF."""
    frames = [Image.new("P", (60, 80), i * 60) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def alpha_palette_png() -> bytes:
    """A palette PNG with a transparent index."""
    img = Image.new("P", (60, 80), 3)
    img.info["transparency"] = 3
    return encode(img, "PNG")


# Valid but awkward images: they must embed (status OK), not crash or be refused.
AWKWARD_IMAGES = {
    "cmyk_jpeg": cmyk_jpeg,
    "16bit_png": sixteen_bit_png,
    "animated_gif": animated_gif,
    "alpha_palette_png": alpha_palette_png,
}


@dataclass(frozen=True)
class Case:
    """One malformed unary request and the status code it must get."""

    name: str
    method: str  # stub attribute, e.g. "EmbedImages"
    request: Message
    code: grpc.StatusCode


def embedder_cases() -> list[Case]:
    """Malformed embedder requests."""
    images = embedder_pb2.EmbedImagesRequest
    texts = embedder_pb2.EmbedTextsRequest
    return [
        Case("zero_byte_image", "EmbedImages", images(images=[b""]), INVALID),
        Case("truncated_jpeg", "EmbedImages", images(images=[truncated_jpeg()]), INVALID),
        Case("not_an_image", "EmbedImages", images(images=[b"GIF89a" + b"\x00" * 10]), INVALID),
        Case("text_as_image", "EmbedImages", images(images=[b"<html>hello</html>"]), INVALID),
        Case("huge_pixel_png", "EmbedImages", images(images=[png_header(60_000, 60_000)]), INVALID),
        Case("zero_width_png", "EmbedImages", images(images=[png_header(0, 80)]), INVALID),
        Case("no_images", "EmbedImages", images(), INVALID),
        Case("too_many_images", "EmbedImages", images(images=[solid()] * 65), INVALID),
        Case("unknown_member_image", "EmbedImages", images(images=[solid()], members=["m9"]), INVALID),
        Case(
            "message_over_limit",
            "EmbedImages",
            images(images=[b"\xff" * OVER_LIMIT_BYTES]),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        Case("empty_text", "EmbedTexts", texts(texts=[""]), INVALID),
        Case("blank_text", "EmbedTexts", texts(texts=["   \n\t "]), INVALID),
        Case("overlong_text", "EmbedTexts", texts(texts=["dress " * 400]), INVALID),
        Case("control_char_text", "EmbedTexts", texts(texts=["red\x00dress"]), INVALID),
        Case("escape_seq_text", "EmbedTexts", texts(texts=["red \x1b[31m dress"]), INVALID),
        Case("unknown_member_text", "EmbedTexts", texts(texts=["dress"], members=["zz"]), INVALID),
    ]


def search_cases() -> list[Case]:
    """Malformed search requests (the collection holds one product, id ``good-1``)."""
    nan = float("nan")
    search = search_pb2.SearchRequest
    return [
        Case("no_text_no_image", "Search", search(top_k=5), INVALID),
        Case("top_k_over_limit", "Search", search(text="dress", top_k=100_000), INVALID),
        Case("negative_top_k", "Search", search(text="dress", top_k=-1), INVALID),
        Case("offset_over_limit", "Search", search(text="dress", offset=10_000_000), INVALID),
        Case("nan_min_score", "Search", search(text="dress", min_score=nan), INVALID),
        Case("nan_mmr_lambda", "Search", search(text="dress", mmr_lambda=nan), INVALID),
        Case("nan_text_weight", "Search", search(text="dress", image=solid(), text_weight=nan), INVALID),
        Case(
            "text_weight_above_one", "Search", search(text="dress", image=solid(), text_weight=1.5), INVALID
        ),
        Case("unknown_fusion", "Search", search(text="dress", fusion="magic"), INVALID),
        Case("unknown_member", "Search", search(text="dress", members=["zz"]), INVALID),
        # undeclared fields filter by exact match (issue 14); a malformed field name is still refused
        Case("malformed_filter_field", "Search", search(text="dress", filters={"so ul!": "x"}), INVALID),
        Case("empty_filter_value", "Search", search(text="dress", filters={"gender": ""}), INVALID),
        Case(
            "too_many_filters",
            "Search",
            search(text="dress", filters={f"cluster.m{i}": "1" for i in range(20)}),
            INVALID,
        ),
        Case("control_char_query", "Search", search(text="dress\x07"), INVALID),
        Case("overlong_query", "Search", search(text="x" * 5000), INVALID),
        Case("corrupt_query_image", "Search", search(image=b"\x89PNG\r\n\x1a\nbroken"), INVALID),
        Case(
            "query_over_limit",
            "Search",
            search(image=b"\xff" * OVER_LIMIT_BYTES),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        Case("similar_missing_id", "MoreLikeThis", search_pb2.MoreLikeThisRequest(id=" "), INVALID),
        Case(
            "similar_unknown_id",
            "MoreLikeThis",
            search_pb2.MoreLikeThisRequest(id="no-such-product"),
            grpc.StatusCode.NOT_FOUND,
        ),
        Case("items_empty_id", "GetItems", search_pb2.GetItemsRequest(ids=["good-1", ""]), INVALID),
        Case("items_too_many", "GetItems", search_pb2.GetItemsRequest(ids=["x"] * 201), INVALID),
    ]


def ingest_unary_cases() -> list[Case]:
    """Malformed Delete and Count requests."""
    return [
        Case("delete_nothing", "Delete", ingest_pb2.DeleteRequest(), INVALID),
        Case("delete_empty_id", "Delete", ingest_pb2.DeleteRequest(ids=[""]), INVALID),
        Case("delete_bad_filter", "Delete", ingest_pb2.DeleteRequest(filters={"a b": "x"}), INVALID),
        Case("count_bad_filter", "Count", ingest_pb2.CountRequest(filters={"gender": ""}), INVALID),
    ]


def ingest_items(image_root_parent: str) -> list[tuple[str, ingest_pb2.Product, str]]:
    """Malformed products (name, product, expected per-item code); each one alone is refused."""
    product = ingest_pb2.Product
    ok = solid()
    secret = f"{image_root_parent}/secret.jpg"
    return [
        ("missing_id", product(image=ok), "INVALID_ARGUMENT"),
        ("blank_id", product(id="   ", image=ok), "INVALID_ARGUMENT"),
        ("overlong_id", product(id="x" * 300, image=ok), "INVALID_ARGUMENT"),
        ("no_image", product(id="b-1"), "INVALID_ARGUMENT"),
        ("zero_byte_image", product(id="b-2", image=b""), "INVALID_ARGUMENT"),
        ("corrupt_image", product(id="b-3", image=b"\x89PNG\r\n\x1a\nbroken"), "INVALID_ARGUMENT"),
        ("truncated_jpeg", product(id="b-4", image=truncated_jpeg()), "INVALID_ARGUMENT"),
        ("huge_pixel_png", product(id="b-5", image=png_header(60_000, 60_000)), "INVALID_ARGUMENT"),
        ("path_traversal", product(id="b-6", image_uri="../secret.jpg"), "PERMISSION_DENIED"),
        ("absolute_outside", product(id="b-7", image_uri=secret), "PERMISSION_DENIED"),
        ("file_uri_outside", product(id="b-8", image_uri=f"file://{secret}"), "PERMISSION_DENIED"),
        ("symlink_escape", product(id="b-9", image_uri="escape.jpg"), "PERMISSION_DENIED"),
        ("http_when_off", product(id="b-10", image_uri="http://127.0.0.1:9/a.jpg"), "PERMISSION_DENIED"),
        ("https_when_off", product(id="b-11", image_uri="https://127.0.0.1:9/a.jpg"), "PERMISSION_DENIED"),
        ("ftp_scheme", product(id="b-12", image_uri="ftp://127.0.0.1/a.jpg"), "INVALID_ARGUMENT"),
        ("missing_file", product(id="b-13", image_uri="nope.jpg"), "NOT_FOUND"),
        ("directory_uri", product(id="b-14", image_uri="."), "INVALID_ARGUMENT"),
        ("reserved_attribute", product(id="b-15", image=ok, attributes={"cluster": "1"}), "INVALID_ARGUMENT"),
        ("bad_attribute_name", product(id="b-16", image=ok, attributes={"a b": "1"}), "INVALID_ARGUMENT"),
        ("control_char_text", product(id="b-17", image=ok, text="red\x00dress"), "INVALID_ARGUMENT"),
        ("overlong_text", product(id="b-18", image=ok, text="y" * 5000), "INVALID_ARGUMENT"),
        (
            "too_many_attributes",
            product(id="b-19", image=ok, attributes={f"a{i}": "v" for i in range(100)}),
            "INVALID_ARGUMENT",
        ),
        (
            "overlong_attribute",
            product(id="b-20", image=ok, attributes={"gender": "w" * 2000}),
            "INVALID_ARGUMENT",
        ),
    ]


__all__ = [
    "AWKWARD_IMAGES",
    "Case",
    "OVER_LIMIT_BYTES",
    "embedder_cases",
    "ingest_items",
    "ingest_unary_cases",
    "png_header",
    "search_cases",
]
