"""GPU benchmark (run by bench/gpu.sh on a CUDA machine): training and embedder throughput per GPU.

* training: images/s of one default member (64 px byobnet + frozen MiniLM projection) on one GPU
  for each AMP precision, from the difference of a long and a short run (model build, caption
  encoding and validation cancel out);
* embedder: images/s and texts/s at batch 256 through the embedder's own encoder, fp16 and fp32,
  for the default bundle (the trained one when built, else its members at random init) and for a
  random-init open_clip ViT-B-32 (224 px).

Writes bench/results/gpu.json. ``--quick`` runs small sizes and writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import open_clip
import torch

from bench.common import DEFAULT_BUNDLE, best_of, describe_bundle, finish
from bench.embedder import sample_images
from services.common.config import EmbedderConfig
from services.embedder.encoder import EnsembleEncoder
from services.embedder.images import decode_image
from tests.support.bundles import make_random_bundle
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import default_config
from training.train import train_member

BATCH = 256
QUERY = "red floral summer dress with short sleeves"


def training_rate(precision: str, steps: tuple[int, int], work: Path) -> dict[str, Any]:
    """Training images/s of the default's first member on cuda:0 at ``precision``."""
    member = default_config().members[0]
    catalog = write_synthetic_catalog(work / "catalog", 1400, seed=0)
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), work / "cache")
    seconds = {}
    for count in steps:
        cfg = dataclasses.replace(member, epochs=1, steps_per_epoch=count, warmup_steps=min(5, count))
        torch.cuda.synchronize()
        start = time.perf_counter()
        run = train_member(cfg, data, work / f"{precision}-{count}", torch.device("cuda"), precision)
        torch.cuda.synchronize()
        seconds[count] = time.perf_counter() - start
    images = (steps[1] - steps[0]) * member.batch()
    return {
        "member": member.name,
        "batch": member.batch(),
        "images_per_s": round(images / max(1e-9, seconds[steps[1]] - seconds[steps[0]]), 1),
        "final_loss": round(run.history[-1]["loss"], 4),
    }


def default_bundle(work: Path) -> tuple[Path, str]:
    """The trained default bundle when built, else the default's members at random init."""
    if (DEFAULT_BUNDLE / "bundle.json").exists():
        return DEFAULT_BUNDLE, "default bundle (make train)"
    configs = {m.name: m.model_config() for m in default_config().members if not m.snapshot_of}
    return make_random_bundle(work / "default-random", configs), "default members at random init"


def vit_b_32_bundle(work: Path) -> tuple[Path, str]:
    """A one-member bundle of open_clip's ViT-B-32 at random init."""
    return make_random_bundle(work / "vit-b-32", {"vitb32": open_clip.get_model_config("ViT-B-32")}), (
        "open_clip ViT-B-32, random init"
    )


def serving_rates(bundle: Path, precision: str, batch: int) -> dict[str, float]:
    """Images/s and texts/s of the embedder's encoder at ``batch`` on cuda:0."""
    cfg = EmbedderConfig(device="cuda", precision=precision, bundle=str(bundle))
    encoder = EnsembleEncoder.load(cfg)
    names = encoder.member_names
    images = [encoder.prepare_image(decode_image(b, "x", 10**8, 10**9), names) for b in sample_images(batch)]
    texts = [encoder.prepare_text(f"{QUERY} {i}", names) for i in range(batch)]

    def timed(fn) -> float:
        fn()  # warm-up (kernels, cudnn autotune)
        torch.cuda.synchronize()
        return best_of(lambda: (fn(), torch.cuda.synchronize()), repeats=5)

    return {
        "images_per_s": round(batch / timed(lambda: encoder.encode_images(images)), 1),
        "texts_per_s": round(batch / timed(lambda: encoder.encode_texts(texts)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and write bench/results/gpu.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes; result file not written")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench gpu: no CUDA device", file=sys.stderr)
        return 2
    steps, batch = ((3, 6), 32) if args.quick else ((10, 60), BATCH)
    precisions = ["fp16", "bf16"] if torch.cuda.is_bf16_supported() else ["fp16"]
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-gpu-"))
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "training": {}, "serving": {}}
    for precision in precisions:
        result["training"][precision] = training_rate(precision, steps, work)
        print(f"training {precision}: {result['training'][precision]}", flush=True)
    for bundle, label in (default_bundle(work), vit_b_32_bundle(work)):
        rates = {p: serving_rates(bundle, p, batch) for p in ("fp16", "fp32")}
        result["serving"][label] = {"members": describe_bundle(bundle), "batch": batch, **rates}
        print(f"serving {label}: {rates}", flush=True)
    result["figures"] = [
        {"what": f"training images/s per GPU ({p})", "value": r["images_per_s"], "goal": "", "met": None}
        for p, r in result["training"].items()
    ]
    finish("gpu", result, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
