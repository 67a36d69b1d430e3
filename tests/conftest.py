"""Shared fixtures: tiny real GGUF models and an isolated edgekit cache/config per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest

from tests.fixtures.env import env_var
from tests.fixtures.tiny_models import write_tiny_llama

REAL_CACHE = os.environ.get("EDGEKIT_CACHE_DIR")


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Histories and derived vectors go to a temporary folder, never the user's data dir."""
    folder = tmp_path_factory.mktemp("data")
    with env_var("EDGEKIT_DATA_DIR", str(folder)):
        yield folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-block random LLaMA GGUF (F32) with a byte-fallback SentencePiece vocab."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny_q8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(
        tmp_path_factory.mktemp("models") / "tiny-llama-q8_0.gguf",
        weight_type=gguf.GGMLQuantizationType.Q8_0,
    )


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty per-test config dir, where a test can drop its own device profiles."""
    monkeypatch.setenv("EDGEKIT_CONFIG_DIR", str(tmp_path / "config"))
    profiles = tmp_path / "config" / "profiles"
    profiles.mkdir(parents=True)
    yield profiles
