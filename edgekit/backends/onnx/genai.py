"""onnxruntime-genai's own runtime over an edgekit ONNX folder: the proof that it loads unchanged.

A folder written by `edgekit convert --to onnx` (int4) carries the builder's genai_config.json, so
`onnxruntime_genai.Model(folder)` runs it without edgekit. `genai_greedy` feeds token ids (not
text), so a comparison with edgekit's own loop measures the graphs and the loops, not two
tokenizers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import RuntimeBackendError


def genai_greedy(folder: Path, tokens: Sequence[int], n_tokens: int) -> list[int]:
    """Greedy continuation of `tokens` by onnxruntime_genai's Generator (stops at EOS)."""
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        raise RuntimeBackendError(
            f"onnxruntime-genai is not installed: {e}", hint="pip install 'edgekit[convert]'"
        ) from None
    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(tokens) + n_tokens)
    gen = og.Generator(model, params)
    gen.append_tokens(list(tokens))
    out: list[int] = []
    while len(out) < n_tokens and not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return out


def greedy_agreement(folder: Path, prompt: str, n_tokens: int) -> dict[str, Any]:
    """`edgekit run`'s greedy tokens for `prompt` against onnxruntime_genai's from the same ids."""
    from edgekit.backends.base import SamplingParams
    from edgekit.backends.onnx.runtime import OnnxRuntime
    from edgekit.devices.profiles import load_profile

    rt = OnnxRuntime(folder, load_profile("cpu"), n_ctx=n_tokens + 64)
    try:
        tokens = rt.prompt_tokens(prompt)
        rt.generate(tokens, SamplingParams(max_tokens=n_tokens, temperature=0.0))
        ours, eos = rt.last_tokens, rt.tokenizer.eos_ids
    finally:
        rt.close()
    theirs = [t for t in genai_greedy(folder, tokens, n_tokens) if t not in eos]
    same = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
    return {
        "folder": str(folder),
        "n": len(ours),
        "same_prefix": min(len(ours), len(theirs)) if same is None else same,
        "identical": ours == theirs,
    }
