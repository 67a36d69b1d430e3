"""The ONNX run path's pieces that need neither torch nor an exported model.

Sampling, provider choice, the cache layout read from a session's declarations, the tokenizer and
chat template from tokenizer.json, and the errors for broken folders (missing tokenizer, corrupt
graph). Needs onnxruntime and tokenizers (the ONNX runtime's own dependencies) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from edgekit.backends.base import SamplingParams
from edgekit.backends.onnx.model import (
    is_onnx_model,
    load_onnx_dir,
    onnx_model_info,
    plan_onnx_run,
)
from edgekit.backends.onnx.runtime import OnnxRuntime, cache_slots, choose_providers
from edgekit.backends.onnx.sampling import make_rng, penalize, sample_next
from edgekit.backends.onnx.tokenizer import OnnxTokenizer
from edgekit.devices.profiles import load_profile
from edgekit.errors import (
    EdgekitError,
    ModelFileError,
    ModelNotFoundError,
    UnsupportedModelError,
)
from tests.fixtures.onnx import model_dir


def test_greedy_and_seeded_sampling() -> None:
    logits = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    assert sample_next(logits, SamplingParams(temperature=0.0), make_rng(0)) == 1
    # Penalising token 1 makes token 2 the argmax.
    assert (
        sample_next(logits, SamplingParams(temperature=0, repeat_penalty=2.0), make_rng(0), [1])
        == 2
    )
    params = SamplingParams(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0, seed=7)
    draws = {sample_next(logits, params, make_rng(i)) for i in range(50)}
    assert draws == {1, 2}  # top-k 2 never draws the others
    a = [sample_next(logits, params, make_rng(5)) for _ in range(5)]
    assert a == [sample_next(logits, params, make_rng(5)) for _ in range(5)]
    strict = SamplingParams(temperature=1.0, top_k=0, top_p=0.5, min_p=0.0)
    assert {sample_next(logits, strict, make_rng(i)) for i in range(30)} == {1}


def test_penalty_matches_llama_cpp_rule() -> None:
    out = penalize(np.array([2.0, -2.0, 1.0], dtype=np.float32), [0, 1], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0]


def test_providers_follow_the_profile_and_the_build() -> None:
    assert choose_providers(
        ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]
    ) == (
        ["CPUExecutionProvider"],
        ["CUDAExecutionProvider"],
    )
    assert choose_providers(["CoreMLExecutionProvider"], ["CPUExecutionProvider"])[0] == [
        "CPUExecutionProvider"
    ]


@dataclass
class Arg:
    name: str
    shape: list[int | str]
    type: str = "tensor(float)"


def test_cache_layout_comes_from_the_session() -> None:
    # Grouped KV (2 heads, not the 4 query heads): exactly where optimum's wrapper guesses wrong.
    inputs = [
        Arg("input_ids", ["batch_size", "sequence_length"], "tensor(int64)"),
        Arg("past_key_values.0.key", ["batch_size", 2, "past_sequence_length", 16]),
        Arg(
            "past_key_values.0.value",
            ["batch_size", 2, "past_sequence_length", 16],
            "tensor(float16)",
        ),
    ]
    slots = cache_slots(inputs, ["logits", "present.0.key", "present.0.value"])
    assert [(s.output, s.empty_shape) for s in slots] == [
        ("present.0.key", (1, 2, 0, 16)),
        ("present.0.value", (1, 2, 0, 16)),
    ]
    assert slots[1].dtype is np.float16
    with pytest.raises(UnsupportedModelError):
        cache_slots(inputs, ["logits", "present.0.key"])


def test_tokenizer_and_chat_template_without_transformers(tmp_path: Path) -> None:
    tok = OnnxTokenizer(load_onnx_dir(model_dir(tmp_path / "m")))
    ids = tok.encode("the river")
    assert ids[0] == tok.bos_id == 1 and tok.decode(ids) == "the river"
    assert tok.eos_ids == {2}
    chat = tok.format_chat([{"role": "user", "content": "hi"}])
    assert chat == "<s><|user|>hi\n<|assistant|>"
    assert tok.encode(chat).count(1) == 1  # the template's BOS is not doubled
    step = tok.streamer()
    assert "".join(step(i) for i in ids[1:]) == "the river"


def test_corrupt_graph_is_one_clear_error(tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "m")
    assert is_onnx_model(folder)
    with pytest.raises(ModelFileError, match="cannot load"):
        OnnxRuntime(folder, load_profile("cpu"), 64)


def test_missing_tokenizer_and_missing_graph(tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "m", tokenizer=False)
    with pytest.raises(ModelFileError, match=r"tokenizer\.json"):
        OnnxRuntime(folder, load_profile("cpu"), 64)
    with pytest.raises(ModelFileError, match=r"tokenizer\.json"):
        plan_onnx_run(folder, "cpu")
    with pytest.raises(ModelNotFoundError):
        load_onnx_dir(tmp_path / "nothing")
    assert not is_onnx_model(tmp_path / "nothing")


def test_memory_plan_counts_an_fp32_kv_cache(tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "m")
    run = plan_onnx_run(folder, "cpu", n_ctx=256)
    info = onnx_model_info(load_onnx_dir(folder))
    assert run.info.file_type == "ONNX fp32" and info.block_count == 2
    # 2 layers x 256 cells x (K+V: 2 x 2 heads x 16) x 4 bytes
    assert run.estimate.kv_cache == 2 * 256 * 64 * 4
    assert isinstance(EdgekitError("x"), Exception)


def test_the_run_path_imports_neither_torch_nor_transformers(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = model_dir(tmp_path / "m")
    code = (
        "import sys\n"
        "from edgekit.backends.onnx.model import load_onnx_dir, plan_onnx_run\n"
        "from edgekit.backends.onnx.runtime import OnnxRuntime\n"
        "from edgekit.backends.onnx.tokenizer import OnnxTokenizer\n"
        f"run = plan_onnx_run({str(folder)!r}, 'cpu', 64)\n"
        "tok = OnnxTokenizer(load_onnx_dir(run.info.path))\n"
        "tok.encode(tok.format_chat([{'role': 'user', 'content': 'hi'}]))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gguf_spm_tokenizer_matches_llama_cpp(tiny_model: Path) -> None:
    """The tokenizer.json written for SentencePiece GGUFs splits text exactly as llama.cpp."""
    import llama_cpp

    from edgekit.converters.onnx_gguf_tokenizer import spm_tokenizer

    tok = spm_tokenizer(tiny_model)
    llm = llama_cpp.Llama(model_path=str(tiny_model), vocab_only=True, verbose=False)
    for text in ["the river", "  two  spaces\n\nand lines", "café 日本 🙂", "<s>the</s>"]:
        assert tok.encode(text).ids == llm.tokenize(text.encode(), add_bos=True, special=True)
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=True) == text.replace(
            "<s>", ""
        ).replace("</s>", "")
    llm.close()
