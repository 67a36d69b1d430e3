"""Where edgekit keeps its files (XDG on Linux, the platform's conventions elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path

from edgekit.errors import ModelFileError


def cache_dir() -> Path:
    return _folder("EDGEKIT_CACHE_DIR", user_cache_path("edgekit"))


def config_dir() -> Path:
    return _folder("EDGEKIT_CONFIG_DIR", user_config_path("edgekit"))


def data_dir() -> Path:
    return _folder("EDGEKIT_DATA_DIR", user_data_path("edgekit"))


def _folder(variable: str, default: Path) -> Path:
    """The override in `variable`, else the platform's folder; refused when it names a file
    (every later mkdir or open under it would fail with a bare OSError)."""
    override = os.environ.get(variable)
    path = Path(override) if override else default
    if path.exists() and not path.is_dir():
        from edgekit.errors import DataDirError

        named = f"{variable}={override}" if override else str(path)
        raise DataDirError(
            f"{named} is not a folder",
            hint=f"Point {variable} at a folder (it is made if missing), or unset it.",
        )
    return path


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def models_dir() -> Path:
    return cache_dir() / "models"


def check_model_path(path: Path) -> Path:
    """A model is a regular file or a folder. Opening a FIFO, a socket or a terminal device to
    sniff its first bytes would block forever (or read the user's keyboard)."""
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ModelFileError(
            f"{path} is not a regular file (a FIFO, socket or device)",
            hint="Give the path of a .gguf file or an ONNX model folder.",
        )
    return path
