"""An alias map kept as one JSON file (``alias -> collection``), replaced atomically on every change."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from services.storage.port import StoreError


def read_aliases(file: Path) -> dict[str, str]:
    """The aliases in ``file`` (none when it does not exist); a malformed file is a StoreError."""
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{file}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{file}: expected an object of alias -> collection")
    return {str(k): str(v) for k, v in data.items()}


def write_aliases(file: Path, aliases: dict[str, str]) -> dict[str, str]:
    """Replace ``file`` with ``aliases`` (temp file, fsync, rename: readers see old or new); returns them."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".aliases-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(aliases, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, file)
    return aliases


__all__ = ["read_aliases", "write_aliases"]
