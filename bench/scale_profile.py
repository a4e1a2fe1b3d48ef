"""The shape of a real catalog's embeddings, so the scale curve can draw a million items like them.

HNSW's recall and build time depend on how the vectors spread, above all on their local intrinsic
dimension. The catalog the demo indexed (the from-scratch bundle's four members over 40k products) has
a median local intrinsic dimension of about 8 per member; items drawn as ``centroid + isotropic
noise`` in 128 dimensions have about 49, far harder for any graph than real embeddings.

A :class:`MemberProfile` keeps, per member, what a Gaussian mixture needs to draw vectors with the
real spread: the norm of the mean vector, the eigenvalues of the component centres' covariance
(``between``), those of the pooled within-component covariance (``within``) and the components'
weights (k-means on the stored vectors). No vector or product is kept. Drawn with 1,024 components
in a random basis, the synthetic items have a local intrinsic dimension of about 10 (a little harder
than the real 8) and the same participation ratio (about 10-13 dimensions carry the variance).

``python -m bench.scale_profile [--store data/store] [--collection catalog]`` fits the profile to
an indexed catalog and writes bench/catalog_profile.json (committed; the scale curve reads it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from services.common.config import PROJECT_ROOT

PROFILE_PATH = Path(__file__).with_name("catalog_profile.json")
COMPONENTS = 1024


@dataclass(frozen=True)
class MemberProfile:
    """One member's embedding spread: mean norm, centre and within-component spectra, weights."""

    mean_norm: float
    between: tuple[float, ...]  # eigenvalues, largest first (length = dim)
    within: tuple[float, ...]  # eigenvalues, largest first (length = dim)
    weights: tuple[float, ...]  # component weights, largest first, summing to 1

    def __post_init__(self) -> None:
        if len(self.between) != len(self.within):
            raise ValueError(f"between has {len(self.between)} eigenvalues, within {len(self.within)}")
        if min(self.between + self.within) < 0:
            raise ValueError("eigenvalues must be >= 0")
        if not self.weights or abs(sum(self.weights) - 1.0) > 1e-3:
            raise ValueError(f"component weights must sum to 1, got {sum(self.weights):.4f}")

    @property
    def dim(self) -> int:
        """The member's vector dimension."""
        return len(self.within)


def fit_profile(vectors: np.ndarray, components: int = COMPONENTS, seed: int = 0) -> MemberProfile:
    """The profile of one member's stored vectors (``n x dim``), by mini-batch k-means."""
    from sklearn.cluster import MiniBatchKMeans

    data = np.asarray(vectors, dtype=np.float64)
    components = min(components, len(data))
    kmeans = MiniBatchKMeans(components, n_init=1, random_state=seed, batch_size=4096).fit(data)
    centres, labels = kmeans.cluster_centers_, kmeans.labels_
    weights = np.bincount(labels, minlength=components) / len(data)
    mean = data.mean(axis=0)
    offsets = centres - mean
    between = np.linalg.eigvalsh((offsets * weights[:, None]).T @ offsets)[::-1]
    within = np.linalg.eigvalsh(np.cov((data - centres[labels]).T))[::-1]
    return MemberProfile(
        mean_norm=round(float(np.linalg.norm(mean)), 6),
        between=tuple(round(float(v), 8) for v in np.clip(between, 0, None)),
        within=tuple(round(float(v), 8) for v in np.clip(within, 0, None)),
        weights=tuple(round(float(w), 7) for w in sorted(weights[weights > 0], reverse=True)),
    )


def save_profiles(profiles: Mapping[str, MemberProfile], path: Path, source: str) -> None:
    """Write ``{member: profile}`` (and where it was fitted) as JSON."""
    body = {"source": source, "members": {m: asdict(p) for m, p in profiles.items()}}
    path.write_text(json.dumps(body, separators=(",", ":")) + "\n")


def load_profiles(path: Path = PROFILE_PATH) -> dict[str, MemberProfile]:
    """``{member: profile}`` from a file :func:`save_profiles` wrote."""
    body = json.loads(Path(path).read_text())
    out = {}
    for member, fields in body["members"].items():
        weights = np.asarray(fields["weights"], dtype=np.float64)
        fields = {**fields, "weights": tuple(weights / weights.sum())}  # rounding left a few 1e-7
        out[member] = MemberProfile(**{k: v if k == "mean_norm" else tuple(v) for k, v in fields.items()})
    return out


def stored_vectors(store_path: Path, collection: str) -> dict[str, np.ndarray]:
    """Every dense member's vectors of an indexed catalog (Edge store at ``store_path``)."""
    from services.storage.edge import EdgeStore

    store = EdgeStore(store_path)
    rows: dict[str, list[np.ndarray]] = {}
    try:
        for point in store.scroll(collection, batch_size=1024, with_vectors=True):
            for member, vector in point.vectors.items():
                if isinstance(vector, np.ndarray | list) and len(vector) > 1:
                    rows.setdefault(member, []).append(np.asarray(vector, dtype=np.float32))
    finally:
        store.close()
    if not rows:
        raise SystemExit(f"no dense vectors in {collection!r} at {store_path}")
    return {m: np.stack(v) for m, v in sorted(rows.items())}


def main(argv: list[str] | None = None) -> int:
    """Fit the profile of an indexed catalog and write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale_profile", description=__doc__)
    parser.add_argument("--store", default=str(PROJECT_ROOT / "data" / "store"), help="an Edge store")
    parser.add_argument("--collection", default="catalog", help="collection or alias")
    parser.add_argument("--components", type=int, default=COMPONENTS)
    parser.add_argument("--out", default=str(PROFILE_PATH))
    args = parser.parse_args(argv)
    vectors = stored_vectors(Path(args.store), args.collection)
    profiles = {}
    for member, matrix in vectors.items():
        profiles[member] = fit_profile(matrix, args.components)
        print(f"{member}: {len(matrix):,} x {matrix.shape[1]}, mean norm {profiles[member].mean_norm:.3f}")
    source = f"{next(iter(vectors.values())).shape[0]} stored items, {args.components} components"
    save_profiles(profiles, Path(args.out), source)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
