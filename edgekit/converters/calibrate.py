"""Calibration: run the real model (torch) on text and record every linear layer's spikes.

Sources: a Hugging Face directory (safetensors only, never pickle) or a GGUF file, which
transformers dequantizes into a float model (`from_pretrained(dir, gguf_file=...)`). For a GGUF
source the reference is therefore the dequantized file itself, not the original float weights.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import CalibrationError, ConversionError
from edgekit.quant.spikes import (
    LayerSpikes,
    SpikeProfile,
    block_of,
    calibration_hash,
    gguf_tensor_name,
    summarize,
)

if TYPE_CHECKING:
    from edgekit.converters.request import ConvertRequest


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel
    architecture: str  # gguf-py architecture name
    n_blocks: int
    name: str
    tokenize: Callable[[str], list[int]]  # text -> token ids, no BOS
    bos_id: int | None


def load_for_calibration(
    source: Path, trust_remote_code: bool = False, quiet: bool = False
) -> LoadedModel:
    """`quiet`: no progress bars from transformers (its tqdm bars go to stderr regardless of
    what the caller prints, e.g. under --json)."""
    with _transformers_bars(enabled=not quiet):
        if source.is_file():
            return _load_gguf(source)
        return _load_hf(source, trust_remote_code)


@contextlib.contextmanager
def _transformers_bars(enabled: bool) -> Iterator[None]:
    """Switch transformers' bars off: its own switch covers most of them, but the GGUF loader
    calls tqdm directly, so that module's tqdm is swapped for a disabled one meanwhile."""
    import functools

    from transformers import modeling_gguf_pytorch_utils
    from transformers.utils import logging

    gguf_utils: Any = modeling_gguf_pytorch_utils  # untyped library
    hf_logging: Any = logging

    if enabled:
        yield
        return
    was, bar = hf_logging.is_progress_bar_enabled(), gguf_utils.tqdm
    hf_logging.disable_progress_bar()
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
        if was:
            hf_logging.enable_progress_bar()


def _arch(model_type: str) -> str:
    from edgekit.converters.families import gguf_arch_name

    return gguf_arch_name(model_type)


def _load_hf(source: Path, trust_remote_code: bool) -> LoadedModel:
    import torch
    import transformers

    from edgekit.converters.hf_source import check_hf_dir

    hf: Any = transformers  # untyped library: keep mypy's strictness on our side of the calls

    cfg = check_hf_dir(source)
    arch = _arch(str(cfg.get("model_type")))
    tok = hf.AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    model = hf.AutoModelForCausalLM.from_pretrained(
        source,
        dtype=torch.float32,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    ).eval()
    return LoadedModel(
        model,
        arch,
        int(model.config.num_hidden_layers),
        source.name,
        lambda text: list(tok(text, add_special_tokens=False)["input_ids"]),
        tok.bos_token_id,
    )


def _load_gguf(path: Path) -> LoadedModel:
    import torch
    import transformers

    from edgekit.gguf.reader import load_model_info

    hf: Any = transformers

    info = load_model_info(path)  # clear errors for corrupt files before transformers sees them
    _arch(info.architecture)
    try:
        model = hf.AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        ).eval()
    except (ValueError, KeyError, RuntimeError) as e:
        raise ConversionError(
            f"transformers cannot load {path.name} as a float model: {e}",
            hint="Calibrate from the Hugging Face checkpoint instead, or pass --scores.",
        ) from None
    tokenize, bos = _llama_tokenizer(path)
    return LoadedModel(model, info.architecture, info.block_count, info.name, tokenize, bos)


def _llama_tokenizer(path: Path) -> tuple[Callable[[str], list[int]], int | None]:
    """The GGUF's own tokenizer, through llama.cpp (exactly what inference will use)."""
    from edgekit.backends.llama_cpp.lib import file_tokenizer

    return file_tokenizer(path)


def sequences(
    tokens: Sequence[int], bos: int | None, seq_len: int, max_sequences: int
) -> list[list[int]]:
    """Windows of the text, each starting with BOS (the position the score later skips)."""
    body = seq_len - 1 if bos is not None else seq_len
    prefix = [bos] if bos is not None else []
    out = [prefix + list(tokens[i : i + body]) for i in range(0, len(tokens), body)]
    out = [s for s in out if len(s) > 1][:max_sequences]
    if not out:
        raise CalibrationError("the calibration text is empty", hint="Check --calib-file.")
    return out


def collect(model: Any, seqs: Iterable[list[int]]) -> dict[str, tuple[list[Any], list[Any]]]:
    """Per linear module: per-token max |input| and |output|, position 0 (BOS) left out."""
    import torch

    seen: dict[str, tuple[list[Any], list[Any]]] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(_: Any, inputs: tuple[Any, ...], output: Any) -> None:
            ins, outs = seen.setdefault(name, ([], []))
            ins.append(inputs[0].detach().abs().amax(-1)[:, 1:].float().reshape(-1).numpy())
            outs.append(output.detach().abs().amax(-1)[:, 1:].float().reshape(-1).numpy())

        return record

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)
    ]
    try:
        with torch.inference_mode():
            # The decoder stack alone: the spikes are inside it, and skipping the LM head spares
            # a (tokens x vocab) matmul that dominates small models with big vocabularies.
            body = model.get_decoder() if hasattr(model, "get_decoder") else model
            for s in seqs:
                body(input_ids=torch.tensor([s]), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return seen


def calibrate(
    loaded: LoadedModel,
    texts: Sequence[str],
    seq_len: int = 128,
    max_sequences: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> SpikeProfile:
    import numpy as np

    tokens = [t for text in texts for t in loaded.tokenize(text)]
    seqs = sequences(tokens, loaded.bos_id, seq_len, max_sequences)
    start = time.perf_counter()

    def tracked() -> Iterable[list[int]]:
        for i, s in enumerate(seqs):
            yield s
            if progress:
                progress(i + 1, len(seqs))

    seen = collect(loaded.model, tracked())
    layers = []
    for module, (ins, outs) in seen.items():
        tensor = gguf_tensor_name(module, loaded.architecture, loaded.n_blocks)
        if tensor is None:
            continue
        layers.append(
            LayerSpikes(
                module=module,
                tensor=tensor,
                block=block_of(tensor),
                input=summarize(np.concatenate(ins)),
                output=summarize(np.concatenate(outs)),
            )
        )
    return SpikeProfile(
        model=loaded.name,
        architecture=loaded.architecture,
        n_tokens=sum(len(s) - 1 for s in seqs),
        calibration_hash=calibration_hash(texts),
        layers=tuple(layers),
        meta={"seq_len": seq_len, "sequences": len(seqs), "seconds": time.perf_counter() - start},
    )


def spike_profile(req: ConvertRequest, source: Path | None = None) -> SpikeProfile:
    """The request's spike profile: its saved scores (a JSON file or a profile in memory), else
    a calibration run over `source` (default: the request's source); kept at --scores-out."""
    from edgekit.converters.onnx_export import silence_false_regex_warning
    from edgekit.quant.spikes import load_profile

    if isinstance(req.scores, SpikeProfile):
        profile = req.scores
    elif req.scores is not None:
        profile = load_profile(req.scores)
    else:
        silence_false_regex_warning()
        # transformers' own bars (a sharded checkpoint's "Loading checkpoint shards", as the
        # GGUF path's float checkpoint is) would only repeat the stage's bar below.
        loaded = load_for_calibration(source or req.source, req.trust_remote_code, quiet=True)
        with req.stage("calibrating") as update:
            profile = calibrate(loaded, [req.calibration_text], progress=update)
    if req.scores_out is not None:
        profile.save(req.scores_out)
    return profile
