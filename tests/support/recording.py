"""Recording the calls a client receives, while the real calls still run."""

from __future__ import annotations

from typing import Any


def recorded(client: Any, method: str, monkeypatch: Any) -> list[dict]:
    """The keyword arguments of every ``client.<method>`` call (the real call still runs)."""
    calls: list[dict] = []
    real = getattr(client, method)

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(client, method, recording)
    return calls
