"""Embedder benchmark: served vs raw throughput, per-member image throughput, a shared image trunk
on/off, batching on/off, trimmed vs padded text.

All figures in one run, side by side. Writes bench/results/embedder.json (``--bundle DIR`` measures
another bundle and writes bench/results/embedder-<bundle name>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import grpc
import open_clip
import torch
import torch.nn.functional as F

from bench.common import bench_bundle, best_of, describe_bundle, write_result
from domain.pretrained_vision import pretrained_visual
from domain.text import encode_text_trimmed, trim_padding
from services.common.config import EmbedderConfig
from services.embedder.encoder import EnsembleEncoder
from services.embedder.images import decode_image
from tests.support.images import encode, gradient
from tests.support.procs import free_port, start_module, wait_serving
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc

BATCH_SIZES = (1, 8, 16, 32, 64, 128)
QUERIES = [
    "white polo t-shirts",
    "watches for men",
    "red floral summer dress",
    "black leather handbag",
    "blue denim jeans",
    "running shoes",
    "gold earrings",
    "sunglasses",
]


def sample_images(n: int) -> list[bytes]:
    """n distinct 60x80 JPEGs (catalog-sized)."""
    base = gradient((60, 80))
    return [
        encode(base.rotate(i * 7 % 360, fillcolor=(i % 255, 80, 160)), "JPEG", quality=90) for i in range(n)
    ]


def raw_forward(encoder: EnsembleEncoder, images: list[bytes]) -> dict[str, Any]:
    """Images/s of the bare model forward (all members) on preprocessed tensors, per batch size."""
    names = encoder.member_names
    items = [encoder.prepare_image(decode_image(b, "x", 10**8, 10**9), names) for b in images]
    rates = {}
    for size in BATCH_SIZES:
        batch = items[:size]
        encoder.encode_images(batch)  # warm-up
        seconds = best_of(lambda b=batch: encoder.encode_images(b), repeats=3)
        rates[size] = round(size / seconds, 1)
    best = max(rates, key=rates.get)
    return {"images_per_s_by_batch": rates, "best_batch": best, "best_images_per_s": rates[best]}


async def _drive(address: str, requests: list[list[bytes]], concurrency: int) -> float:
    """Send requests with ``concurrency`` in flight; return images/s."""
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=requests[0]))  # warm-up

        async def client() -> None:
            while not queue.empty():
                images = queue.get_nowait()
                await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=images), timeout=120)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return sum(len(r) for r in requests) / elapsed


def served(bundle: Path, requests: list[list[bytes]], concurrency: int, env: dict[str, str]) -> float:
    """Images/s through a real ``python -m services.embedder`` process on loopback."""
    port = free_port()
    proc = start_module(
        "services.embedder",
        ["--bundle", str(bundle), "--port", str(port)],
        env={"VITRINE_LOG_LEVEL": "WARNING", **env},
    )
    try:
        wait_serving(f"127.0.0.1:{port}", proc, timeout=120)
        return asyncio.run(_drive(f"127.0.0.1:{port}", requests, concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def text_trim(n_texts: int = 64) -> dict[str, Any]:
    """Trimmed vs padded-77 text encoding on a CLIP-sized causal text tower (ViT-B-32 text config)."""
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    tokens = tokenizer([QUERIES[i % len(QUERIES)] for i in range(n_texts)])
    with torch.inference_mode():
        full = model.encode_text(tokens)
        trimmed_tokens = trim_padding(tokens)
        trimmed = encode_text_trimmed(model, trimmed_tokens)
        t_full = best_of(lambda: model.encode_text(tokens))
        t_trim = best_of(lambda: encode_text_trimmed(model, trim_padding(tokens)))
    cosine = F.cosine_similarity(full, trimmed, dim=-1).min().item()
    return {
        "arch": "ViT-B-32 text tower (width 512, 12 layers, context 77), random init",
        "texts": n_texts,
        "trimmed_length": int(trimmed_tokens.shape[1]),
        "padded77_texts_per_s": round(n_texts / t_full, 1),
        "trimmed_texts_per_s": round(n_texts / t_trim, 1),
        "speedup": round(t_full / t_trim, 2),
        "min_cosine": round(cosine, 6),
    }


def shared_text_trunk(encoder: EnsembleEncoder, repeats: int = 60) -> dict[str, Any]:
    """One-query text embedding with the members' shared trunk run once vs once per member."""
    groups = [list(group) for group in encoder.shared_text_trunks]
    items = [encoder.prepare_text(QUERIES[2], encoder.member_names)]
    timings: dict[str, list[float]] = {"shared": [], "per_member": []}
    for _ in range(repeats):  # interleaved, so both see the same machine
        for label, share in (("shared", True), ("per_member", False)):
            start = time.perf_counter()
            encoder.encode_texts(items, share=share)
            timings[label].append(time.perf_counter() - start)
    shared, alone = encoder.encode_texts(items, share=True), encoder.encode_texts(items, share=False)
    p50 = {label: round(1000 * sorted(t)[len(t) // 2], 2) for label, t in timings.items()}
    return {
        "groups": groups,
        "query": QUERIES[2],
        "shared_p50_ms": p50["shared"],
        "per_member_p50_ms": p50["per_member"],
        "speedup": round(p50["per_member"] / p50["shared"], 2),
        "max_abs_diff": float(max(abs(shared[0][m] - alone[0][m]).max() for m in shared[0])),
        "torch_threads": torch.get_num_threads(),
    }


def image_members(encoder: EnsembleEncoder, images: list[bytes], batch: int = 128) -> dict[str, Any]:
    """Raw images/s per member alone, and for the whole bundle with a shared pretrained image trunk
    run once (when members share one) vs once per member, interleaved in one run."""
    decoded = [decode_image(b, "x", 10**8, 10**9) for b in images[:batch]]
    out: dict[str, Any] = {"batch": len(decoded), "per_member_images_per_s": {}}
    for name in encoder.member_names:
        items = [encoder.prepare_image(img, (name,)) for img in decoded]
        encoder.encode_images(items)  # warm-up
        out["per_member_images_per_s"][name] = round(
            len(items) / best_of(lambda i=items: encoder.encode_images(i)), 1
        )
    items = [encoder.prepare_image(img, encoder.member_names) for img in decoded]
    timings: dict[str, list[float]] = {"shared": [], "per_member": []}
    for _ in range(3):
        for label, share in (("shared", True), ("per_member", False)):
            start = time.perf_counter()
            encoder.encode_images(items, share=share)
            timings[label].append(time.perf_counter() - start)
    rates = {label: round(len(items) / min(t), 1) for label, t in timings.items()}
    out["bundle_images_per_s"] = rates["shared"]
    out["bundle_images_per_s_trunk_per_member"] = rates["per_member"]
    out["shared_image_trunks"] = [list(g) for g in encoder.shared_image_trunks]
    return out


def trunk_runtime(encoder: EnsembleEncoder, images: list[bytes], batch: int = 32) -> dict[str, Any]:
    """Whole-bundle raw images/s with the pretrained trunks on ONNX Runtime vs in torch, interleaved
    (the frozen stages that tuned members share switch with them)."""
    towers = [t for t in (pretrained_visual(m.model) for m in encoder.members.values()) if t is not None]
    sessions = [(t.runtime, t.frozen_runtime) for t in towers]
    if not towers or any(whole is None for whole, _ in sessions):
        return {"skipped": "no pretrained trunk on ONNX Runtime in this bundle"}
    decoded = [decode_image(b, "x", 10**8, 10**9) for b in images[:batch]]
    items = [encoder.prepare_image(img, encoder.member_names) for img in decoded]
    timings: dict[str, list[float]] = {"onnx": [], "torch": []}

    def switch(on: bool) -> None:
        for tower, (whole, frozen) in zip(towers, sessions, strict=True):
            tower.runtime, tower.frozen_runtime = (whole, frozen) if on else (None, None)

    try:
        for _ in range(4):
            for label in timings:
                switch(label == "onnx")
                encoder.encode_images(items)  # warm-up after the switch
                start = time.perf_counter()
                encoder.encode_images(items)
                timings[label].append(time.perf_counter() - start)
    finally:
        switch(True)
    rates = {label: round(len(items) / min(t), 1) for label, t in timings.items()}
    return {
        "batch": len(items),
        "onnx_images_per_s": rates["onnx"],
        "torch_images_per_s": rates["torch"],
        "speedup": round(rates["onnx"] / rates["torch"], 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every embedder measurement and write the result file."""
    parser = argparse.ArgumentParser(prog="python -m bench embedder")
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default bundle)")
    args = parser.parse_args(argv or [])
    bundle, source = (args.bundle, f"bundle {args.bundle}") if args.bundle else bench_bundle()
    # The raw reference uses every core; the served embedder runs with its own default threads.
    cfg = EmbedderConfig(device="auto", bundle=str(bundle), threads=os.cpu_count() or 1)
    encoder = EnsembleEncoder.load(cfg)
    images = sample_images(256)
    raw = raw_forward(encoder, images)
    best = raw["best_batch"]
    print(f"raw forward: {raw}")
    per_member = image_members(encoder, images)
    print(f"image throughput per member and bundle: {per_member}")
    runtime = trunk_runtime(encoder, images)
    print(f"pretrained trunks, ONNX Runtime vs torch: {runtime}")
    batch_env = {"VITRINE_EMBEDDER_MAX_BATCH": str(best), "VITRINE_EMBEDDER_MAX_WAIT_MS": "5"}
    requests = [images[i : i + best] for i in range(0, 256, best)] * 8
    served_rate = served(bundle, requests, 2, batch_env)
    all_threads = {**batch_env, "VITRINE_EMBEDDER_THREADS": str(cfg.threads)}
    served_all_threads = served(bundle, requests, 2, all_threads)
    singles = [[img] for img in images[:192]]
    on = served(bundle, singles, 32, batch_env)
    off = served(bundle, singles, 32, {**batch_env, "VITRINE_EMBEDDER_BATCHING": "false"})
    result = {
        "bundle": source,
        "members": describe_bundle(bundle),
        "device": str(encoder.device),
        "raw_forward": raw,
        "image_members": per_member,
        "trunk_runtime": runtime,
        "served": {
            "images_per_s": round(served_rate, 1),
            "request_size": best,
            "concurrency": 2,
            "ratio_vs_raw": round(served_rate / raw["best_images_per_s"], 2),
            "goal": ">= 0.8",
            "threads": (
                "default (torch: the cores left after the decode workers, all cores with ONNX image "
                "trunks; ONNX trunks: all cores)"
            ),
            "all_cores_images_per_s": round(served_all_threads, 1),
            "all_cores_ratio_vs_raw": round(served_all_threads / raw["best_images_per_s"], 2),
        },
        "concurrent_single_image": {
            "clients": 32,
            "requests": len(singles),
            "batching_on_images_per_s": round(on, 1),
            "batching_off_images_per_s": round(off, 1),
            "speedup": round(on / off, 2),
            "goal": ">= 3",
        },
        "text_trim": {**text_trim(), "goal": ">= 3x, cosine >= 0.9999"},
        "shared_text_trunk": shared_text_trunk(encoder),
    }
    write_result(f"embedder-{bundle.name}" if args.bundle else "embedder", result)
    return result


if __name__ == "__main__":
    main()
