"""The stored-document layout and collection naming that ingest writes and search reads.

A product is stored as one point: id ``uuid5(product id)``, one named vector per member, and a
payload of the product's ``id``, ``text``, ``image_uri``, its attributes, ``bundle_version`` and the
cluster of the product under every member as ``payload["cluster"] = {member: id}`` (a flat
``"cluster.<member>"`` key is read too). Collections are named ``<catalog>__<bundle>-<version>`` and
reached through the alias ``<catalog>``; a same-version rebuild appends ``.r<timestamp>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

CLUSTER_FIELD = "cluster"
BUNDLE_VERSION_FIELD = "bundle_version"
RESERVED_FIELDS = ("id", "text", "image_uri", CLUSTER_FIELD, BUNDLE_VERSION_FIELD)
NO_CLUSTER = -1
COLLECTION_SEPARATOR = "__"
REBUILD_SEPARATOR = ".r"  # <collection>.r<timestamp>: a same-version rebuild (Ingest.Reindex)


def cluster_key(member: str) -> str:
    """The dotted payload key of a member's cluster id (what filters and payload indexes name)."""
    return f"{CLUSTER_FIELD}.{member}"


def _cluster_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def cluster_under(payload: Mapping[str, Any], member: str) -> int:
    """The product's cluster under one member, or -1 (the hot path: one lookup per hit)."""
    nested = payload.get(CLUSTER_FIELD)
    value = nested.get(member) if isinstance(nested, Mapping) else payload.get(cluster_key(member))
    found = _cluster_id(value)
    return NO_CLUSTER if found is None else found


def clusters_of(payload: Mapping[str, Any]) -> dict[str, int]:
    """``{member: cluster id}`` from a payload (unknown or malformed entries are left out)."""
    found: dict[str, int] = {}
    nested = payload.get(CLUSTER_FIELD)
    if isinstance(nested, Mapping):
        items = list(nested.items())
    else:
        prefix = f"{CLUSTER_FIELD}."
        items = [(key[len(prefix) :], value) for key, value in payload.items() if key.startswith(prefix)]
    for member, value in items:
        cluster = _cluster_id(value)
        if cluster is not None:
            found[str(member)] = cluster
    return found


def is_internal(key: str) -> bool:
    """Payload keys that are not product attributes (the cluster map)."""
    return key == CLUSTER_FIELD or key.startswith(f"{CLUSTER_FIELD}.")


def _sanitize(part: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", part.strip()).strip("-.")
    return re.sub(r"_{2,}", "_", cleaned)


def holds_version(collection: str | None, canonical: str) -> bool:
    """Whether ``collection`` was built for the bundle version whose collection name is ``canonical``."""
    return collection is not None and (
        collection == canonical or collection.startswith(canonical + REBUILD_SEPARATOR)
    )


def collection_name(catalog: str, bundle_name: str, bundle_version: str) -> str:
    """``<catalog>__<bundle>-<version>``, each part reduced to ``[A-Za-z0-9_.-]``.

    Double underscores inside a part are collapsed so ``__`` only ever separates catalog and bundle.
    """
    parts = {"catalog": catalog, "bundle_name": bundle_name, "bundle_version": bundle_version}
    cleaned = {key: _sanitize(value) for key, value in parts.items()}
    for key, value in cleaned.items():
        if not value:
            raise ValueError(f"{key} {parts[key]!r} has no usable characters [A-Za-z0-9_.-]")
    return f"{cleaned['catalog']}{COLLECTION_SEPARATOR}{cleaned['bundle_name']}-{cleaned['bundle_version']}"
