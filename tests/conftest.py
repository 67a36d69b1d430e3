"""Shared fixtures: the tiny models every area tests on, each built once per session, and the
one way a test gets its own edgekit folders.

The builders are plain functions in tests/fixtures/ (tiny_models, tiny_tokenizers,
hf_checkpoints, onnx, convert); the fixtures here share their outputs across the session, so a
model is written (and trial-loaded by llama.cpp in a child process, once per file) once, not per
module. Session models are read-only: a test that edits a model copies it into its tmp_path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import gguf
import pytest

from tests.fixtures.convert import FloatLikeSource, float_like_source, tiny_base
from tests.fixtures.env import env_var
from tests.fixtures.tiny_models import write_tiny_llama


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Histories and derived vectors go to a temporary folder, never the user's data dir."""
    folder = tmp_path_factory.mktemp("data")
    with env_var("EDGEKIT_DATA_DIR", str(folder)):
        yield folder


@pytest.fixture
def isolated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder (bias history, adapters) of this test's own, empty at the start."""
    folder = tmp_path / "data"
    monkeypatch.setenv("EDGEKIT_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder (probe markers, converted bases, the default model) of this test's own.
    The llama.cpp build and its tools stay where setup put them (they are found from the venv)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty per-test config dir, where a test can drop its own device profiles."""
    monkeypatch.setenv("EDGEKIT_CONFIG_DIR", str(tmp_path / "config"))
    profiles = tmp_path / "config" / "profiles"
    profiles.mkdir(parents=True)
    yield profiles


# --- tiny GGUF models (llama.cpp loads them in milliseconds) -----------------------------------


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


@pytest.fixture(scope="session")
def tiny4_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with 4 blocks (enough for per-layer erasure and control vectors), whose
    vocabulary spells the bias suites' words whole."""
    from tests.fixtures.bias_data import suite_words

    path = tmp_path_factory.mktemp("models") / "tiny4.gguf"
    return write_tiny_llama(path, n_layers=4, whole_words=suite_words())


@pytest.fixture(scope="session")
def tiny_base_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-block F32 llama with 256-wide rows, so K-quants apply: the convert tests' base."""
    return tiny_base(tmp_path_factory.mktemp("models") / "tiny-base-f32.gguf")


@pytest.fixture(scope="session")
def tiny_float_like(
    tiny_base_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> FloatLikeSource:
    """The tiny base as Q4_K_M, expanded back to F32, and that moved off every grid."""
    return float_like_source(tmp_path_factory.mktemp("float_like"), tiny_base_gguf)


# --- tiny Hugging Face checkpoints and their ONNX export (need the convert extra) ---------------


@pytest.fixture(scope="session")
def tiny_hf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 2-layer random checkpoint per family (llama, qwen2, mistral, gemma3), BPE tokenizer,
    every weight mattering (converter_checks): the HF -> GGUF and ONNX export checks share them."""
    from tests.fixtures.hf_checkpoints import ARCHITECTURES, build_tiny_hf

    root = tmp_path_factory.mktemp("hf")
    return {arch: build_tiny_hf(root / arch, arch, converter_checks=True) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def tiny_onnx_exports(
    tiny_hf_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """`export(arch)`: tiny_hf_models[arch] as an fp32 ONNX folder, as `edgekit convert --to onnx`
    writes it; each family exported once per session, on first use (~5 s each)."""
    from tests.fixtures.onnx import export_onnx

    root = tmp_path_factory.mktemp("onnx")

    @functools.cache
    def export(arch: str) -> Path:
        return export_onnx(tiny_hf_models[arch], root / f"{arch}-onnx")

    return export


@pytest.fixture(scope="session")
def tiny_onnx_model(tiny_onnx_exports: Callable[[str], Path]) -> Path:
    """The tiny llama's fp32 ONNX folder: the onnx back end's model in the contract test."""
    return tiny_onnx_exports("llama")
