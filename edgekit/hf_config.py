"""Typed reads of a Hugging Face `config.json`: the file comes with a downloaded model, so each
value is checked like the GGUF reader checks metadata (edgekit/gguf/values.py): the right type,
a sane range, and an error that names the key and the file instead of a KeyError or a
ZeroDivisionError from deep inside the estimate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

MAX_DIMENSION = 1 << 24  # hidden sizes, heads, layers, vocabularies, contexts: far above any model

ErrorType = Callable[..., EdgekitError]


class ConfigReader:
    """`cfg` as read from `path`; `error` is the EdgekitError class a bad value raises."""

    def __init__(self, cfg: Mapping[str, Any], path: Path, error: ErrorType) -> None:
        self.cfg, self.path, self.error = cfg, path, error

    def _bad(self, key: str, why: str) -> EdgekitError:
        return self.error(
            f"{self.path}: {key} {why}",
            hint="The model's config.json is damaged or from an unsupported exporter: "
            "re-export the model, or fix the value.",
        )

    def integer(
        self, key: str, default: int | None = None, minimum: int = 1, maximum: int = MAX_DIMENSION
    ) -> int:
        """A whole number in [minimum, maximum]; `default` when absent or null (None: required)."""
        value = self.cfg.get(key)
        if value is None:
            if default is None:
                raise self._bad(key, "is missing")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, f"must be a whole number, not {value!r:.40}")
        if not minimum <= value <= maximum:
            raise self._bad(key, f"must be between {minimum} and {maximum}, not {value}")
        return value

    def text(self, key: str, default: str = "") -> str:
        value = self.cfg.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, f"must be a string, not {value!r:.40}")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.cfg.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, f"must be true or false, not {value!r:.40}")
        return value
