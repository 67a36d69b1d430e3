"""HF -> ONNX export, spike-aware int8 and the onnxruntime loop, on tiny random checkpoints.

Needs the convert extra (torch, transformers, optimum-onnx, onnxruntime); skipped without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")
pytest.importorskip("onnxruntime")

import onnx

from edgekit.backends.base import SamplingParams
from edgekit.backends.onnx.eval import evaluate_onnx
from edgekit.backends.onnx.model import plan_onnx_run
from edgekit.backends.onnx.runtime import OnnxRuntime
from edgekit.converters.onnx import convert_to_onnx
from edgekit.converters.request import ConvertRequest, ConvertResult
from edgekit.devices.profiles import load_profile
from edgekit.errors import (
    ConversionError,
    EdgekitError,
    OutputPathError,
    UnsupportedArchitectureError,
)
from tests.fixtures.hf_checkpoints import ARCHITECTURES, build_tiny_hf

PROMPT = "the river and the city of music"
SPIKE_NODE = "/model/layers.1/mlp/down_proj/MatMul"
GREEDY = SamplingParams(max_tokens=40, temperature=0.0)


def to_onnx(src: Path, out: Path, precision: str, fp32_dir: Path | None = None) -> ConvertResult:
    return convert_to_onnx(ConvertRequest(src, out, precision=precision), fp32_dir)


@pytest.fixture(scope="module")
def spiky(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ConvertResult]:
    """One llama with a planted spike in block 1, in all three precisions."""
    root = tmp_path_factory.mktemp("spiky")
    src = build_tiny_hf(root / "hf", "llama", spike_block=1, spike_scale=200.0)
    fp32 = to_onnx(src, root / "fp32", "fp32")
    return {
        "fp32": fp32,
        **{p: to_onnx(src, root / p, p, fp32.output) for p in ("int8", "spike")},
    }


def torch_greedy(src: Path, prompt: str, n: int) -> tuple[list[int], list[int]]:
    import torch
    import transformers

    tf: Any = transformers  # untyped constructors
    tok = tf.AutoTokenizer.from_pretrained(src)
    model = tf.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return ids[0].tolist(), out[0, ids.shape[1] :].tolist()


def ops(path: Path) -> dict[str, Any]:
    model = onnx.load(str(path / "model.onnx"))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    return {n.name: (n.op_type, [inits.get(x) for x in n.input]) for n in model.graph.node}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fp32_export_generates_pytorchs_greedy_tokens(
    arch: str, tiny_hf_models: dict[str, Path], tiny_onnx_exports: Callable[[str], Path]
) -> None:
    out = tiny_onnx_exports(arch)  # convert_to_onnx(fp32), shared with the back-end contract
    assert {"model.onnx", "tokenizer.json", "config.json", "plan.json"} <= {
        p.name for p in out.iterdir()
    }
    prompt_ids, expected = torch_greedy(tiny_hf_models[arch], PROMPT, GREEDY.max_tokens)
    rt = OnnxRuntime(out, load_profile("cpu"), n_ctx=128)
    tokens = rt.prompt_tokens(PROMPT)
    assert tokens == prompt_ids
    result = rt.generate(tokens, GREEDY)
    # Past gemma3's 16-token sliding window too: 8 prompt + 40 generated positions.
    assert rt.last_tokens == expected[: len(rt.last_tokens)]
    assert len(rt.last_tokens) == GREEDY.max_tokens or result.stats.stop_reason == "eos"
    assert result.stats.decode_tokens_per_s > 0 and result.stats.prompt_tokens == len(tokens)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_spike_aware_int8_keeps_the_spike_layer_float(arch: str, tmp_path: Path) -> None:
    src = build_tiny_hf(tmp_path / "hf", arch, spike_block=1, spike_scale=200.0)
    result = to_onnx(src, tmp_path / "onnx", "spike")
    assert [d.tensor for d in result.plan.kept] == ["blk.1.ffn_down.weight"]
    graph = ops(result.output)
    op, init_types = graph[SPIKE_NODE]
    assert op == "MatMul" and onnx.TensorProto.FLOAT in init_types  # fp32 weight, read back
    assert graph["/model/layers.0/mlp/down_proj/MatMul_quant"][0] == "MatMulInteger"
    # The rotary table and attention-score MatMuls are never quantized.
    assert all(op == "MatMul" for name, (op, _) in graph.items() if "self_attn/MatMul" in name)
    plan = json.loads((result.output / "plan.json").read_text())
    assert plan["target"] == "onnx" and plan["recipe"] == "spike" and plan["base_type"] == "I8"
    assert plan["kept_float_nodes"] == [SPIKE_NODE]
    assert {t["tensor"]: t["type"] for t in plan["tensors"]}["blk.1.ffn_down.weight"] == "F32"
    assert (result.output / "spikes.json").is_file()
    rt = OnnxRuntime(result.output, load_profile("cpu"), n_ctx=64)
    assert rt.generate(rt.prompt_tokens(PROMPT), GREEDY).stats.generated_tokens > 0


def test_planted_spike_int8_all_loses_agreement_spike_aware_keeps(
    spiky: dict[str, ConvertResult],
) -> None:
    text = " ".join(["the music of the river was known in the north and the south"] * 40)
    _, (int8, spike) = evaluate_onnx(
        spiky["fp32"].output, [spiky["int8"].output, spiky["spike"].output], text, n_ctx=64
    )
    print(f"\nint8-all: top1={int8.top1:.3f} kld={int8.kld:.4f} size={int8.file_size}")
    print(f"spike:    top1={spike.top1:.3f} kld={spike.kld:.4f} size={spike.file_size}")
    assert spike.top1 >= int8.top1 + 0.15
    assert spike.kld * 5 < int8.kld
    assert spike.file_size < 0.6 * spiky["fp32"].file_size


def test_int8_all_quantizes_every_weight_node(spiky: dict[str, ConvertResult]) -> None:
    plan = spiky["int8"].plan
    assert not plan.kept and {d.type.name for d in plan.decisions} == {"I8"}
    graph = ops(spiky["int8"].output)
    assert graph[SPIKE_NODE + "_quant"][0] == "MatMulInteger"


def test_run_plan_streaming_and_chat(spiky: dict[str, ConvertResult]) -> None:
    run = plan_onnx_run(spiky["spike"].output, "cpu", n_ctx=96)
    assert run.info.file_type == "ONNX spike" and run.estimate.fits
    rt = OnnxRuntime(run.info.path, run.profile, run.n_ctx)
    pieces: list[str] = []
    chat = rt.format_chat([{"role": "user", "content": "hello"}])
    assert chat == "<s><|user|>hello\n<|assistant|>"
    tokens = rt.prompt_tokens(chat)
    assert tokens.count(rt.tokenizer.bos_id or -1) == 1  # the template's BOS, not a second one
    result = rt.generate(tokens, SamplingParams(max_tokens=20, seed=3), on_token=pieces.append)
    assert "".join(pieces) == result.text
    again = rt.generate(tokens, SamplingParams(max_tokens=20, seed=3))
    assert again.text == result.text  # seeded sampling is reproducible
    rt.close()


def test_unsupported_architecture_is_one_clear_error(tmp_path: Path) -> None:
    src = build_tiny_hf(tmp_path / "hf", "llama")
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgekitError):
        to_onnx(src, tmp_path / "out", "fp32")
    cfg.update(model_type="phi3", architectures=["Phi3ForCausalLM"])
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedArchitectureError):
        to_onnx(src, tmp_path / "out", "fp32")
    assert list(tmp_path.iterdir()) == [src]  # nothing partial left


def test_missing_tokenizer_and_existing_output(tmp_path: Path) -> None:
    src = build_tiny_hf(tmp_path / "hf", "qwen2")
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputPathError):
        to_onnx(src, tmp_path / "taken", "fp32")
    (src / "tokenizer.json").unlink()
    with pytest.raises(ConversionError, match="tokenizer"):
        to_onnx(src, tmp_path / "out", "fp32")


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekit.converters import onnx_int8

    src = build_tiny_hf(tmp_path / "hf", "llama")

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_int8, "quantize_graph", interrupted)
    with pytest.raises(KeyboardInterrupt):
        to_onnx(src, tmp_path / "out", "int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_gguf_source_matches_llama_cpp_logits(tiny_q8_model: Path, tmp_path: Path) -> None:
    """GGUF -> float checkpoint (transformers) -> ONNX: llama.cpp's own logits are the reference."""
    import llama_cpp
    import numpy as np

    out = to_onnx(tiny_q8_model, tmp_path / "onnx", "fp32").output
    assert not (out / "tokenizer.model").exists()  # transformers' copy of the whole GGUF
    rt = OnnxRuntime(out, load_profile("cpu"), n_ctx=128)
    llm = llama_cpp.Llama(model_path=str(tiny_q8_model), n_ctx=128, logits_all=True, verbose=False)
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True)
    assert rt.prompt_tokens(PROMPT) == tokens
    llm.eval(tokens)
    ref = np.asarray(llm.scores[: len(tokens)])
    got = rt.logits(tokens)
    llm.close()
    # llama.cpp also rounds activations to 8 bits in Q8_0 matmuls: close, not equal.
    assert np.abs(ref - got).max() < 0.05 * np.abs(ref).max()
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.95
