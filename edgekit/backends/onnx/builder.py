"""onnxruntime-genai's model builder, the onnxruntime side of the fused export.

The converter (edgekit.converters.onnx_fused) decides what to build and where; this module only
calls the builder, so onnxruntime_genai is imported from the back end that owns it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

from edgekit.backends.heap import release_memory
from edgekit.errors import ConversionError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The builder prints a progress bar per tensor and transformers' load warnings."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        level = logging.root.level
        logging.root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.root.setLevel(level)


def run_builder(
    hf_dir: Path, work: Path, precision: str, trust_remote_code: bool, **extra: str | bool
) -> None:
    """Build `hf_dir` into `work` for the CPU execution provider; ConversionError if it fails."""
    try:
        from onnxruntime_genai.models.builder import create_model
    except ImportError as e:
        raise ConversionError(
            f"onnxruntime-genai's model builder is not installed: {e}",
            hint="pip install 'edgekit[convert]' (onnxruntime-genai 0.14.1, transformers 4.57).",
        ) from None
    try:
        with _quiet():
            create_model(
                model_name=hf_dir.name,
                input_path=str(hf_dir),
                output_dir=str(work),
                precision=precision,
                execution_provider="cpu",
                cache_dir=str(work / ".cache"),
                hf_remote=trust_remote_code,
                hf_token="false",  # local folders only: never look for a hub token
                **extra,
            )
    except (ValueError, KeyError, RuntimeError, OSError, NotImplementedError, AttributeError) as e:
        raise ConversionError(
            f"onnxruntime-genai's builder failed on {hf_dir.name}: {type(e).__name__}: {e}",
            hint="Check that transformers loads the model; see MODELS.md for versions that work.",
        ) from None
    finally:
        # The builder leaves the torch model and its graph in reference cycles (2 GB on a
        # Qwen2-0.5B): collected now, not whenever the collector next looks, mid-calibration.
        release_memory()
