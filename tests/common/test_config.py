"""Config: frozen dataclasses from TOML plus VITRINE_* env overrides, with clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from services.common.config import ConfigError, env_var_table, load_config


def test_defaults_and_ports(tmp_path):
    cfg = load_config(env={})
    assert (cfg.embedder_server.port, cfg.ingest_server.port, cfg.search_server.port) == (50051, 50052, 50053)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embedder.max_batch = 3  # type: ignore[misc]


def test_file_then_env_override(tmp_path):
    file = tmp_path / "v.toml"
    file.write_text('log_level = "DEBUG"\n[embedder]\nmax_batch = 8\n[search_server]\nhost = "0.0.0.0"\n')
    cfg = load_config(file, env={"VITRINE_EMBEDDER_MAX_BATCH": "32", "VITRINE_STORE_PREFER_GRPC": "yes"})
    assert cfg.embedder.max_batch == 32
    assert cfg.store.prefer_grpc is True
    assert cfg.search_server.host == "0.0.0.0" and cfg.search_server.port == 50053
    assert cfg.log_level == "DEBUG"


def test_unknown_key_lists_valid_ones(tmp_path):
    file = tmp_path / "v.toml"
    file.write_text("[embedder]\nmax_bach = 8\n")
    with pytest.raises(ConfigError, match="max_bach.*valid.*max_batch"):
        load_config(file, env={})


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="VITRINE_EMBEDDER_MAX_BATCH"):
        load_config(env={"VITRINE_EMBEDDER_MAX_BATCH": "lots"})


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", env={})


def test_env_table_covers_every_field():
    names = {row[0] for row in env_var_table()}
    assert "VITRINE_EMBEDDER_BUNDLE" in names and "VITRINE_SEARCH_SERVER_PORT" in names
    assert "VITRINE_LOG_LEVEL" in names
