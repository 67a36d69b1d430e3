"""HF safetensors -> base GGUF (F32, or F16 for the matrices) that llama.cpp loads and quantizes.

gguf-py does the format: TensorNameMap names the tensors, its vocab classes and SpecialVocab
carry the tokenizer and chat template, GGUFWriter writes. What is left is what llama.cpp's own
convert_hf_to_gguf.py does per family (hf_arch.py): the hyperparameter keys, Q/K row order for
llama/mistral, Gemma's +1 on norm weights, llama3 rope factors.

Tensors are streamed: the header is written from shapes alone, then each tensor is read from its
memory-mapped shard, fixed and written, so peak memory is about one tensor, not the model.
The file appears under its name only when complete (atomic_output).

Not supported: pre-quantized checkpoints (GPTQ/AWQ/FP8), multimodal Gemma 3
(…ForConditionalGeneration), Mistral's sliding window (llama.cpp's llama graph attends to the
whole context; identical up to `sliding_window` tokens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgekit.backends.llama_cpp.quantize import atomic_output, check_writable
from edgekit.converters.families import NATIVE, Family, native_family
from edgekit.converters.hf_arch import (
    HParams,
    add_hparams,
    check_shapes,
    extra_tensors,
    fix_tensor,
)
from edgekit.converters.hf_source import check_hf_dir
from edgekit.converters.hf_vocab import add_vocab
from edgekit.converters.hf_weights import Weight, read_weights
from edgekit.errors import ConversionError
from edgekit.quant.types import FILE_TYPE_OF

log = logging.getLogger(__name__)
Q = gguf.GGMLQuantizationType
T = gguf.MODEL_TENSOR
_SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)  # recomputed by llama.cpp
_HEADER_SLACK = 16 << 20  # vocabulary and metadata, generously
_REQUIRED = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")


@dataclass(frozen=True)
class Planned:
    """One GGUF tensor: its name, kind, numpy shape and where its data comes from."""

    name: str
    kind: gguf.MODEL_TENSOR | None
    shape: tuple[int, ...]
    weight: Weight


def convert_hf(
    source: Path, out: Path, out_type: gguf.GGMLQuantizationType = Q.F32, converter: str = "auto"
) -> Path:
    """Write `out` from the Hugging Face folder `source`.

    `converter` is "llama.cpp" (its convert_hf_to_gguf.py, every architecture it knows), "native"
    (this module, the native rows of families.FAMILIES), or "auto": native where it maps the family,
    since it streams one tensor at a time, llama.cpp's converter for everything else.
    """
    cfg = check_hf_dir(source)  # bad input gets its specific error first
    native = str(cfg["model_type"]) in NATIVE
    if converter == "llama.cpp" or (converter == "auto" and not native):
        from edgekit.converters.llama_convert import convert_with_llama_cpp

        return convert_with_llama_cpp(source, out, out_type)
    return convert_native(source, out, out_type)


def convert_native(source: Path, out: Path, out_type: gguf.GGMLQuantizationType = Q.F32) -> Path:
    """edgekit's own writer; 1-D tensors stay F32 either way."""
    cfg = check_hf_dir(source)
    if out_type not in (Q.F32, Q.F16):
        raise ConversionError(f"base type {out_type.name} is not supported", hint="Use F32 or F16.")
    family = native_family(str(cfg["model_type"]))
    hp = load_hparams(source)
    check_shapes(hp)
    tensors = plan_tensors(family, hp, read_weights(source))
    n_vocab = _vocab_rows(tensors)
    check_writable(out, sum(4 * int(np.prod(t.shape)) for t in tensors) + _HEADER_SLACK)
    with atomic_output(out) as tmp:
        _write(tmp, source, family, hp, tensors, n_vocab, out_type)
    return out


def load_hparams(source: Path) -> HParams:
    """config.json completed with the defaults of its transformers config class."""
    from transformers import AutoConfig

    try:
        config: Any = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise ConversionError(f"transformers cannot read {source / 'config.json'}: {e}") from None
    hp: HParams = config.to_dict()
    missing = [k for k in _REQUIRED if not hp.get(k)]
    if missing:
        raise ConversionError(
            f"{source / 'config.json'} lacks {', '.join(missing)}",
            hint="A multimodal checkpoint keeps these under text_config; edgekit converts "
            "text-only causal LMs.",
        )
    return hp


def plan_tensors(family: Family, hp: HParams, weights: dict[str, Weight]) -> list[Planned]:
    """Every checkpoint tensor under its GGUF name, in block order; unknown names are errors."""
    names = gguf.get_tensor_name_map(family.arch, hp["num_hidden_layers"])
    allowed = set(gguf.MODEL_TENSORS[family.arch])
    tied = bool(hp.get("tie_word_embeddings"))
    planned: list[Planned] = []
    for hf_name, wt in weights.items():
        if hf_name.endswith(_SKIPPED_SUFFIXES):
            continue
        found = names.get_type_and_name(hf_name, try_suffixes=(".weight", ".bias"))
        if found is None or found[0] not in allowed:
            raise ConversionError(
                f"tensor {hf_name!r} has no place in a llama.cpp {family.name} model",
                hint="The checkpoint holds weights this architecture does not have "
                "(an adapter, a vision tower?); edgekit converts plain causal LMs.",
            )
        kind, name = found
        if kind == T.OUTPUT and tied:
            continue  # llama.cpp reuses token_embd when output is absent
        planned.append(Planned(name, kind, wt.shape, wt))
    for extra in extra_tensors(family, hp):
        planned.append(Planned(extra.name, None, extra.shape, extra))
    return sorted(planned, key=_gguf_order)


def _gguf_order(t: Planned) -> tuple[int, str]:
    # Block tensors by block number (blk.10 after blk.9), the rest first.
    parts = t.name.split(".")
    return (int(parts[1]) + 1 if parts[0] == "blk" else 0, t.name)


def _vocab_rows(tensors: list[Planned]) -> int:
    embd = next((t for t in tensors if t.kind == T.TOKEN_EMBD), None)
    if embd is None or len(embd.shape) != 2:
        raise ConversionError("the checkpoint has no token embedding matrix")
    return embd.shape[0]


def _write(
    path: Path,
    source: Path,
    family: Family,
    hp: HParams,
    tensors: list[Planned],
    n_vocab: int,
    out_type: gguf.GGMLQuantizationType,
) -> None:
    w = gguf.GGUFWriter(path, family.name)
    try:
        _write_all(w, source, family, hp, tensors, n_vocab, out_type)
    finally:
        w.close()


def _write_all(
    w: gguf.GGUFWriter,
    source: Path,
    family: Family,
    hp: HParams,
    tensors: list[Planned],
    n_vocab: int,
    out_type: gguf.GGMLQuantizationType,
) -> None:
    w.add_name(source.name)
    w.add_file_type(FILE_TYPE_OF[out_type])
    add_hparams(w, family, hp, n_vocab)
    add_vocab(w, source, n_vocab, family.space_prefix)
    for t in tensors:
        dtype = _dtype(t, out_type)
        w.add_tensor_info(t.name, t.shape, dtype, int(np.prod(t.shape)) * dtype.itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in tensors:
        data = t.weight.load()
        if data.shape != t.shape:
            raise ConversionError(f"tensor {t.weight.name} changed shape while reading")
        if t.kind is not None:
            data = fix_tensor(family, hp, t.kind, data)
        w.write_tensor_data(data.astype(_dtype(t, out_type), copy=False))
        log.debug("wrote %s %s", t.name, t.shape)


def _dtype(t: Planned, out_type: gguf.GGMLQuantizationType) -> np.dtype[Any]:
    # Norms, biases and rope factors stay F32 as llama.cpp's converter keeps them.
    half = out_type == Q.F16 and len(t.shape) == 2
    return np.dtype(np.float16 if half else np.float32)
