"""HF checkpoint (or GGUF, dequantized) -> fp32 ONNX decoder with KV cache, via optimum's exporter.

optimum-onnx's `main_export` with the `text-generation-with-past` task writes one graph that
takes `past_key_values.*` and returns `present.*`: the layout edgekit's runtime drives. The
exporter also saves the tokenizer (as tokenizer.json, converting slow tokenizers) and the config
beside the graph; whatever it skipped is copied from the source so the folder runs on its own.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

from gguf import Keys

from edgekit.backends.onnx.model import ONNX_FILE, SIDE_FILES, TOKENIZER_FILE
from edgekit.converters.hf_source import check_hf_dir
from edgekit.errors import ConversionError, UnsupportedArchitectureError

TASK = "text-generation-with-past"
# model_type values both the calibrator and optimum's exporter handle (optimum names gemma3's
# text-only model gemma3_text).
EXPORTABLE = ("llama", "mistral", "qwen2", "gemma3_text")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's tracer warnings say nothing a user can act on; errors still propagate."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        level = logging.getLogger("optimum").level
        logging.getLogger("optimum").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("optimum").setLevel(level)


def check_exportable(source: Path) -> str:
    """The model_type of a convertible HF folder, or one clear error."""
    cfg = check_hf_dir(source)
    model_type = str(cfg.get("model_type"))
    if model_type not in EXPORTABLE:
        raise UnsupportedArchitectureError(
            f"cannot export {model_type!r} to ONNX",
            hint=f"edgekit exports {', '.join(EXPORTABLE)} (Gemma 3 as its text-only model).",
        )
    return model_type


def hf_dir_from_gguf(gguf_path: Path, folder: Path) -> Path:
    """Dequantize a GGUF into a float HF checkpoint (the reference is then the GGUF itself)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgekit.gguf_file import read_header

    header = read_header(gguf_path)  # clear errors for corrupt files before transformers does
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        tok = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
            gguf_path.parent, gguf_file=gguf_path.name
        )
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise ConversionError(
            f"transformers cannot load {gguf_path.name} as a float model: {e}",
            hint="Convert from the Hugging Face checkpoint instead.",
        ) from None
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    del model
    # transformers saves the whole GGUF as "tokenizer.model" (its vocab file): not SentencePiece,
    # and as big as the model. tokenizer.json holds the real tokenizer.
    (folder / "tokenizer.model").unlink(missing_ok=True)
    if header.metadata.get(Keys.Tokenizer.MODEL) == "llama":
        from edgekit.converters.onnx_gguf_tokenizer import spm_tokenizer

        # transformers' Unigram stand-in splits words unlike llama.cpp; see that module.
        spm_tokenizer(gguf_path).save(str(folder / TOKENIZER_FILE))
    template = header.metadata.get(Keys.Tokenizer.CHAT_TEMPLATE)
    if isinstance(template, str) and not (folder / "chat_template.jinja").exists():
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return folder


def export_onnx(source: Path, out_dir: Path, trust_remote_code: bool = False) -> Path:
    """Export `source` (an HF folder) to `out_dir`/model.onnx in fp32; returns out_dir."""
    check_exportable(source)
    from optimum.exporters.onnx import main_export

    try:
        with _quiet():
            main_export(
                str(source),
                str(out_dir),
                task=TASK,
                do_validation=False,  # the tests compare greedy tokens with PyTorch instead
                local_files_only=True,
                trust_remote_code=trust_remote_code,
            )
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise ConversionError(
            f"optimum could not export {source.name} to ONNX: {type(e).__name__}: {e}",
            hint="Check that transformers loads the model; see MODELS.md for versions that work.",
        ) from None
    if not (out_dir / ONNX_FILE).is_file():
        raise ConversionError(f"the exporter wrote no {ONNX_FILE} in {out_dir}")
    copy_side_files(source, out_dir)
    if not (out_dir / TOKENIZER_FILE).is_file():
        raise ConversionError(
            f"no {TOKENIZER_FILE} for {source.name}: the runtime needs a fast tokenizer",
            hint="Save the tokenizer with a fast (tokenizers-backed) class.",
        )
    return out_dir


def copy_side_files(source: Path, dest: Path) -> None:
    for name in SIDE_FILES:
        if (source / name).is_file() and not (dest / name).exists():
            shutil.copy2(source / name, dest / name)
