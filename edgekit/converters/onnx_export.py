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
from collections.abc import Callable, Iterator
from pathlib import Path

from gguf import Keys

from edgekit.backends.onnx.model import ONNX_FILE, SIDE_FILES, TOKENIZER_FILE
from edgekit.converters.families import EXPORTABLE
from edgekit.converters.hf_source import check_hf_dir
from edgekit.errors import ConversionError, UnsupportedArchitectureError

TASK = "text-generation-with-past"


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


class _FalseMistralRegexWarning(logging.Filter):
    """transformers 4.57.3-4.57.x warns of an "incorrect regex pattern" (a Mistral tokenizer bug)
    for EVERY tokenizer loaded from a local folder whose config.json a 4.57.3+ transformers wrote,
    with a vocabulary over 100k (Qwen2, Gemma 3), whatever the model family (transformers PR 45444
    fixed the check upstream). It only warns: `_patch_mistral_regex` changes the pre-tokenizer
    only when fix_mistral_regex=True is passed, so the tokenizer edgekit saves is the one the
    GGUF conversion produced. So the warning is dropped, except for the Mistral families it was
    written for."""

    MISTRAL = ("mistral", "mistral3", "voxtral", "ministral", "pixtral")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "incorrect regex pattern" not in msg:
            return True
        return _model_type_of(msg) in self.MISTRAL


def _model_type_of(message: str) -> str | None:
    import json
    import re

    m = re.search(r"loading from '([^']+)'", message)
    cfg = Path(m[1]) / "config.json" if m else None
    if cfg is None or not cfg.is_file():
        return None
    return str(json.loads(cfg.read_text(encoding="utf-8")).get("model_type"))


def silence_false_regex_warning() -> None:
    """Install the filter once on transformers' tokenizer logger."""
    log = logging.getLogger("transformers.tokenization_utils_base")
    if not any(isinstance(f, _FalseMistralRegexWarning) for f in log.filters):
        log.addFilter(_FalseMistralRegexWarning())


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


def hf_dir_from_gguf(
    gguf_path: Path, folder: Path, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Dequantize a GGUF into a float HF checkpoint (the reference is then the GGUF itself)."""
    from edgekit.converters.gguf_to_hf import write_float_checkpoint
    from edgekit.gguf.reader import read_header

    silence_false_regex_warning()
    header = read_header(gguf_path)  # clear errors for corrupt files before transformers does
    try:
        write_float_checkpoint(gguf_path, folder, progress)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise ConversionError(
            f"transformers cannot load {gguf_path.name} as a float model: {e}",
            hint="Convert from the Hugging Face checkpoint instead.",
        ) from None
    # transformers saves the whole GGUF as "tokenizer.model" (its vocab file): not SentencePiece,
    # and as big as the model. tokenizer.json holds the real tokenizer.
    (folder / "tokenizer.model").unlink(missing_ok=True)
    if header.metadata.get(Keys.Tokenizer.MODEL) == "llama":
        from edgekit.converters.onnx_gguf_tokenizer import spm_tokenizer

        # transformers' Unigram stand-in splits words unlike llama.cpp; see that module.
        spm_tokenizer(gguf_path).save(str(folder / TOKENIZER_FILE))
    from edgekit.converters.onnx_gguf_tokenizer import match_gguf_tokenizer

    match_gguf_tokenizer(folder, gguf_path)
    template = header.metadata.get(Keys.Tokenizer.CHAT_TEMPLATE)
    if isinstance(template, str) and not (folder / "chat_template.jinja").exists():
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return folder


def export_onnx(source: Path, out_dir: Path, trust_remote_code: bool = False) -> Path:
    """Export `source` (an HF folder) to `out_dir`/model.onnx in fp32; returns out_dir."""
    check_exportable(source)
    silence_false_regex_warning()
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
