"""HF checkpoint -> the fused fp32 decoder of onnxruntime-genai's model builder, cached per source.

The builder (PyPI `onnxruntime-genai`) emits the graph onnxruntime's CPU kernels are written for:
GroupQueryAttention with rotary embedding inside, SkipSimplifiedLayerNormalization, one packed
qkv MatMul per layer, ~20 nodes per layer where optimum's export has ~300. It also writes
genai_config.json, so the folder loads unchanged in `onnxruntime_genai.Model`.

edgekit uses it for the fp32 graph only and quantizes that itself (edgekit.backends.onnx.nbits):
the builder's own int4 recipes are fixed lists, edgekit's come from the planner. The fp32 graph is
both the quantizer's input and the reference `eval` compares against, so it is built once per
source and kept in the cache folder (`fused_cache_dir`), never beside the output.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from edgekit.backends.onnx.model import ONNX_FILE, SIDE_FILES, TOKENIZER_FILE
from edgekit.errors import ConversionError, UnsupportedArchitectureError
from edgekit.outputs import partial_path, remove_stale_partials
from edgekit.paths import cache_dir

Log = Callable[[str], None]
GENAI_CONFIG = "genai_config.json"
# Architectures the builder handles and edgekit's tests run through it (the builder knows more;
# a family is added here once a tiny checkpoint of it passes tests/converters/test_onnx_int4.py).
FUSED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Gemma3ForCausalLM",
)
_CACHE_VERSION = "1"  # bump when the cached graph's recipe changes


def fused_architecture(hf_config: dict[str, object]) -> str | None:
    archs = hf_config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs else None
    return arch if arch in FUSED_ARCHITECTURES else None


def source_key(source: Path) -> str:
    """A content key for a GGUF file or an HF folder: a changed file is a new cache entry."""
    h = hashlib.sha256(_CACHE_VERSION.encode())
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}".encode())
        with f.open("rb") as fh:  # head and tail: hashing GBs of weights on every convert is slow
            h.update(fh.read(1 << 20))
            if st.st_size > 1 << 20:
                fh.seek(max(st.st_size - (1 << 20), 1 << 20))
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def fused_cache_dir(source: Path) -> Path:
    """Where the fp32 fused graph of `source` lives: <cache>/onnx/<name>-<key>/fp32-fused."""
    stem = source.stem if source.is_file() else source.name
    return cache_dir() / "onnx" / f"{stem}-{source_key(source)}" / "fp32-fused"


def _check_layer_pattern(config: dict[str, object]) -> None:
    """The builder (0.13.2, 0.14.1) places Gemma 3's global layers at every 6th block whatever
    the config says; a checkpoint with another pattern would export with the wrong rotary base
    and window."""
    if config.get("architectures") != ["Gemma3ForCausalLM"] or "layer_types" not in config:
        return
    n = int(str(config.get("num_hidden_layers", 0)))
    assumed = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n)]
    if config["layer_types"] != assumed:
        raise UnsupportedArchitectureError(
            "this Gemma 3 checkpoint's sliding/global layer pattern is not the one "
            "onnxruntime-genai's builder assumes (every 6th layer global)",
            hint="Use --precision int8 or spike (optimum's export follows the config).",
        )


def build_fused(
    hf_dir: Path, out_dir: Path, trust_remote_code: bool = False, **extra: str | bool
) -> Path:
    """Run the builder on an HF folder into `out_dir` (fp32 unless `extra` asks otherwise)."""
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    if fused_architecture(config) is None and not extra.get("any_architecture"):
        raise UnsupportedArchitectureError(
            f"onnxruntime-genai's builder path does not cover {config.get('architectures')}",
            hint=f"Fused ONNX covers {', '.join(FUSED_ARCHITECTURES)}; "
            "use --precision int8 or spike (optimum's unfused export) for others.",
        )
    extra.pop("any_architecture", None)
    _check_layer_pattern(config)
    precision = str(extra.pop("precision", "fp32"))
    from edgekit.converters.onnx_export import silence_false_regex_warning

    silence_false_regex_warning()
    from edgekit.backends.onnx.builder import run_builder

    remove_stale_partials(out_dir)
    work = partial_path(out_dir)
    shutil.rmtree(work, ignore_errors=True)
    try:
        run_builder(hf_dir, work, precision, trust_remote_code, **extra)
    except ConversionError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work / ".cache", ignore_errors=True)
    # The builder re-saves the tokenizer through transformers; the source's own tokenizer.json is
    # the one checked against llama.cpp (see onnx_gguf_tokenizer), so it wins.
    for name in SIDE_FILES:
        if (hf_dir / name).is_file() and (name == TOKENIZER_FILE or not (work / name).exists()):
            shutil.copy2(hf_dir / name, work / name)
    if not (work / ONNX_FILE).is_file() or not (work / GENAI_CONFIG).is_file():
        shutil.rmtree(work, ignore_errors=True)
        raise ConversionError(f"the builder wrote no {ONNX_FILE} / {GENAI_CONFIG} for {hf_dir}")
    shutil.rmtree(out_dir, ignore_errors=True)
    work.rename(out_dir)
    return out_dir


def fused_cached(source: Path) -> bool:
    folder = fused_cache_dir(source)
    return (folder / ONNX_FILE).is_file() and (folder / GENAI_CONFIG).is_file()


def cached_fused_fp32(
    source: Path,
    hf_dir: Callable[[], Path],
    trust_remote_code: bool = False,
    log: Log | None = None,
) -> Path:
    """The fused fp32 graph of `source`, built on first use. `hf_dir` makes the float checkpoint
    (a GGUF is dequantized only when the cache misses)."""
    say = log or (lambda _: None)
    folder = fused_cache_dir(source)
    if fused_cached(source):
        say(f"fp32 fused graph from the cache: {folder}")
        if source.is_file():  # folders cached before a tokenizer fix are repaired in place
            from edgekit.converters.onnx_gguf_tokenizer import match_gguf_tokenizer

            if match_gguf_tokenizer(folder, source):
                say("tokenizer set to split, begin and end as llama.cpp does with the GGUF")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    say(f"building the fp32 fused graph with onnxruntime-genai (cached in {folder})")
    return build_fused(hf_dir(), folder, trust_remote_code)
