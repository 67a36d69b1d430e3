"""The fused ONNX path: the builder's graph, planned 4/8-bit MatMulNBits, both runtimes.

Tiny random checkpoints (llama, qwen2, gemma3 with tied embeddings) go through the real builder,
the real MatMulNBitsQuantizer and onnxruntime; onnxruntime_genai runs the same folders.
Needs the convert extra (torch, transformers, onnxruntime, onnxruntime-genai); skipped without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_genai")

import onnx

from edgekit.backends.base import SamplingParams
from edgekit.backends.onnx.genai import genai_greedy
from edgekit.backends.onnx.model import load_onnx_dir
from edgekit.backends.onnx.nbits import weight_ops
from edgekit.backends.onnx.runtime import OnnxRuntime
from edgekit.converters.onnx import convert_to_onnx
from edgekit.converters.onnx_fused import fused_cache_dir
from edgekit.converters.request import ConvertRequest, ConvertResult
from edgekit.devices.profiles import load_profile
from edgekit.errors import PlanError
from edgekit.quant.planner import RandomLayers, Recipe, Spike, TargetBpw
from edgekit.quant.spikes import SpikeProfile
from edgekit.quant.types import NBITS_4, NBITS_8
from tests.fixtures.env import env_var
from tests.fixtures.hf_checkpoints import build_tiny_hf

PROMPT = "the river and the city of music"
GREEDY = SamplingParams(max_tokens=24, temperature=0.0)
SPIKE = "blk.1.ffn_down.weight"


def int4(
    src: Path, out: Path, scores: SpikeProfile | None = None, recipe: Recipe | None = None
) -> ConvertResult:
    req = ConvertRequest(src, out, "onnx", plan_recipe=recipe, precision="int4", scores=scores)
    return convert_to_onnx(req)


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("cache")
    with env_var("EDGEKIT_CACHE_DIR", str(folder)):
        yield folder


@pytest.fixture(scope="module")
def converted(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, ConvertResult]]:
    """Each family with a planted spike in block 1, converted with the spike recipe."""
    root = tmp_path_factory.mktemp("fused")
    out = {}
    for arch in ("llama", "qwen2", "gemma3"):
        # Gemma 3's real pattern (5 sliding layers, then a global one), which the builder assumes.
        types = ["sliding_attention"] * 2 if arch == "gemma3" else None
        src = build_tiny_hf(
            root / f"hf-{arch}", arch, spike_block=1, spike_scale=200.0, layer_types=types
        )
        out[arch] = (src, int4(src, root / f"{arch}-int4", recipe=Spike(high_type=NBITS_8)))
    return out


def torch_greedy(src: Path, prompt: str, n: int) -> tuple[list[int], list[int]]:
    import torch
    import transformers

    tf: Any = transformers
    tok = tf.AutoTokenizer.from_pretrained(src)
    model = tf.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return ids[0].tolist(), out[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_fused_graph_planned_bits_and_both_runtimes(
    arch: str, converted: dict[str, tuple[Path, ConvertResult]]
) -> None:
    _, result = converted[arch]
    folder = result.output
    names = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "plan.json"} <= names
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    op_types = {n.op_type for n in graph.graph.node}
    assert {"MatMulNBits", "GroupQueryAttention"} <= op_types
    assert "MatMulInteger" not in op_types
    # The planted spike is kept at 8 bits, the rest of the blocks at 4, the head at 8.
    assert [d.tensor for d in result.plan.kept] == [SPIKE]
    ops = weight_ops(folder / "model.onnx")
    assert ops["/model/layers.1/mlp/down_proj/MatMul_Q8"] == "MatMulNBits:8"
    assert ops["/model/layers.0/mlp/down_proj/MatMul_Q4"] == "MatMulNBits:4"
    assert ops["/lm_head/MatMul_Q8"] == "MatMulNBits:8"
    embed = [v for k, v in ops.items() if k.startswith("/model/embed_tokens/")]
    # Tied (gemma3): the Gather reads the head's 8-bit table; untied: its own, planned at 4 bits.
    assert embed == [f"GatherBlockQuantized:{8 if arch == 'gemma3' else 4}"]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["precision"] == "int4" and plan["base_type"] == NBITS_4.name
    assert {"/model/layers.1/mlp/down_proj/MatMul", "/lm_head/MatMul"} <= set(plan["bits"]["8"])

    rt = OnnxRuntime(folder, load_profile("cpu"), n_ctx=128)
    tokens = rt.prompt_tokens(PROMPT)
    rt.generate(tokens, GREEDY)
    ours = rt.last_tokens
    rt.close()
    assert len(ours) > 0
    theirs = [
        t for t in genai_greedy(folder, tokens, GREEDY.max_tokens) if t not in rt.tokenizer.eos_ids
    ]
    assert theirs == ours  # onnxruntime_genai loads the folder unchanged and agrees token for token


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_cached_fp32_fused_graph_matches_pytorch(
    arch: str, converted: dict[str, tuple[Path, ConvertResult]]
) -> None:
    src, _ = converted[arch]
    fp32 = fused_cache_dir(src)
    assert (fp32 / "model.onnx").is_file() and (fp32 / "genai_config.json").is_file()
    prompt_ids, expected = torch_greedy(src, PROMPT, GREEDY.max_tokens)
    rt = OnnxRuntime(fp32, load_profile("cpu"), n_ctx=128)
    tokens = rt.prompt_tokens(PROMPT)
    assert tokens == prompt_ids
    rt.generate(tokens, GREEDY)
    assert rt.last_tokens == expected[: len(rt.last_tokens)] and rt.last_tokens


def test_no_stray_fp32_copy_and_true_size(
    converted: dict[str, tuple[Path, ConvertResult]], own_cache: Path
) -> None:
    src, result = converted["llama"]
    siblings = {p.name for p in result.output.parent.iterdir()}
    assert not any("fp32" in s or s.startswith(".") for s in siblings)
    assert fused_cache_dir(src).is_relative_to(own_cache)
    d = load_onnx_dir(result.output)
    data = (result.output / "model.onnx.data").stat().st_size
    assert d.file_size == data + (result.output / "model.onnx").stat().st_size
    assert d.file_size == result.file_size


def test_target_bpw_and_random_control_share_the_budget(
    converted: dict[str, tuple[Path, ConvertResult]], tmp_path: Path
) -> None:
    src, base = converted["llama"]
    profile = base.profile
    assert profile is not None
    bpw = base.plan.bpw + 1.0
    ours = int4(src, tmp_path / "ours", profile, TargetBpw(bpw))
    ctrl = RandomLayers(seed=1, bpw=bpw)
    rand = int4(src, tmp_path / "rand", profile, ctrl)
    assert ours.plan.bpw <= bpw and rand.plan.bpw <= bpw
    assert (ours.plan.recipe, rand.plan.recipe) == ("measured", "random")
    # The planted spike's damage at 4 bits is measured, not assumed from its score.
    record = json.loads((ours.output / "plan.json").read_text())["sensitivity"]
    labels = {p["label"] for p in record["probes"]}
    assert {"kind:head", "kind:mlp/down_proj", "block:1", f"alone:{SPIKE}"} <= labels
    assert max(record["costs"], key=record["costs"].get) == SPIKE
    assert SPIKE in {d.tensor for d in ours.plan.kept}
    assert {d.type for d in ours.plan.kept} == {NBITS_8}
    # Written bytes follow the plan (within the k_quant zero points the stand-in type omits).
    for r in (ours, rand):
        assert abs(r.file_size - base.file_size - (r.plan.n_bytes - base.plan.n_bytes)) < 0.05 * (
            r.file_size
        )


def test_the_default_is_the_measured_plan_at_the_builders_kquant_mixed_size(
    converted: dict[str, tuple[Path, ConvertResult]], tmp_path: Path
) -> None:
    from edgekit.backends.onnx.nbits import fused_nodes
    from edgekit.quant.onnx_plan import kquant_mixed_budget, n_params

    src, base = converted["llama"]
    got = int4(src, tmp_path / "default", base.profile)
    graph = onnx.load(str(fused_cache_dir(src) / "model.onnx"), load_external_data=False)
    nodes = fused_nodes(graph)
    budget = kquant_mixed_budget(nodes)
    assert got.plan.recipe == "measured" and got.plan.n_bytes <= budget
    assert got.plan.params["bpw"] == round(8 * budget / n_params(nodes), 4)
    assert "sensitivity" in json.loads((got.output / "plan.json").read_text())


def test_saved_reference_scores_as_the_lockstep_evaluation(
    converted: dict[str, tuple[Path, ConvertResult]], tmp_path: Path
) -> None:
    """The probes' one-session-at-a-time KLD (reference log-probs in a file) is eval's KLD."""
    from edgekit.backends.onnx.eval import evaluate_onnx
    from edgekit.backends.onnx.probe_ref import SavedReference
    from edgekit.texts.calibration import CALIBRATION_TEXT

    src, result = converted["qwen2"]
    reference = fused_cache_dir(src)
    _, rows = evaluate_onnx(reference, [result.output], CALIBRATION_TEXT, max_windows=2)
    saved = SavedReference(reference, CALIBRATION_TEXT, tmp_path / "ref.f32", max_windows=2)
    try:
        assert saved.kld(result.output) == pytest.approx(rows[0].kld, rel=1e-6)
        assert saved.kld(reference) == pytest.approx(0.0, abs=1e-6)
    finally:
        saved.close()
    assert not any(tmp_path.iterdir())


def test_a_probe_cut_at_its_first_block_scores_as_the_whole_probe(
    converted: dict[str, tuple[Path, ConvertResult]], tmp_path: Path
) -> None:
    """Blocks before the probed one are the background's: feeding the tensors the background
    passed into block 1 to the probe's suffix graph gives the whole probe's KLD."""
    from edgekit.backends.onnx.cut import crossing, suffix, with_outputs
    from edgekit.backends.onnx.nbits import NbitsParts, fused_nodes
    from edgekit.backends.onnx.probe_ref import SavedReference
    from edgekit.texts.calibration import CALIBRATION_TEXT

    src, _ = converted["qwen2"]
    parts = NbitsParts(fused_cache_dir(src) / "model.onnx")
    nodes = fused_nodes(parts.graph())
    parts.prepare(nodes, None)
    high = {n.name: NBITS_8 for n in nodes}
    low = {**high, **{n.name: NBITS_4 for n in nodes if n.name.startswith("blk.1.")}}
    background = parts.assemble(nodes, high)
    crossed = crossing(background.graph, 1)
    assert len(crossed) == 2  # the residual stream and the last block's output
    ref = parts.write_probe(".test-bg.onnx", nodes, high, lambda m: with_outputs(m, crossed))
    whole = parts.write_probe(".test-whole.onnx", nodes, low)
    cut = parts.write_probe(".test-cut.onnx", nodes, low, lambda m: suffix(m, 1))
    saved = SavedReference(ref, CALIBRATION_TEXT, tmp_path / "ref.f32", 64, 3, crossed)
    try:
        assert "input_ids" not in {i.name for i in onnx.load(str(cut)).graph.input}
        assert saved.kld(whole) > 1e-4
        assert saved.kld(cut) == pytest.approx(saved.kld(whole), rel=1e-5)
        assert saved.kld(ref) == pytest.approx(0.0, abs=1e-6)
    finally:
        saved.close()
        for path in (ref, whole, cut):
            path.unlink()


def test_float_high_type_keeps_a_matmul_float(
    converted: dict[str, tuple[Path, ConvertResult]], tmp_path: Path
) -> None:
    import gguf

    src, base = converted["qwen2"]
    recipe = Spike(top_k=1, high_type=gguf.GGMLQuantizationType.F16)
    out = int4(src, tmp_path / "f", base.profile, recipe)
    ops = weight_ops(out.output / "model.onnx")
    assert ops["/model/layers.1/mlp/down_proj/MatMul"] == "MatMul"
    with pytest.raises(PlanError):
        bad = Spike(high_type=gguf.GGMLQuantizationType.IQ2_XS)
        int4(src, tmp_path / "g", base.profile, bad)
    assert not (tmp_path / "g").exists()


def test_gemma3_layer_pattern_the_builder_would_get_wrong_is_refused(tmp_path: Path) -> None:
    from edgekit.errors import UnsupportedArchitectureError

    src = build_tiny_hf(tmp_path / "hf", "gemma3")  # layer 1 global: not every 6th
    with pytest.raises(UnsupportedArchitectureError, match="pattern"):
        int4(src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_false_mistral_regex_warning_is_dropped_only_for_other_families(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers emits it for local folders with vocabularies over 100k (Qwen2, Gemma 3):
    too big to train here, so the record transformers logs is sent as it would send it."""
    import logging

    import transformers  # noqa: F401 - configures the "transformers" logger first

    from edgekit.converters.onnx_export import silence_false_regex_warning

    folders = {}
    for model_type in ("qwen2", "mistral"):
        folders[model_type] = tmp_path / model_type
        folders[model_type].mkdir()
        (folders[model_type] / "config.json").write_text(json.dumps({"model_type": model_type}))
    silence_false_regex_warning()
    monkeypatch.setattr(logging.getLogger("transformers"), "propagate", True)
    log = logging.getLogger("transformers.tokenization_utils_base")
    for folder in folders.values():
        log.warning(
            f"The tokenizer you are loading from '{folder}' with an incorrect regex pattern: "
            "... You should set the `fix_mistral_regex=True` flag"
        )
    log.warning("another tokenizer warning")
    warned = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert len(warned) == 2 and str(folders["mistral"]) in warned[0]
    assert warned[1] == "another tokenizer warning"


def _onnxruntime_nbits(fp32: Path, config: Any) -> dict[str, list[Any]]:
    """onnxruntime's own MatMulNBitsQuantizer over the whole graph: each MatMulNBits node's
    weight tensors, keyed by the node's output (names differ between its configs)."""
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quant = MatMulNBitsQuantizer(
        onnx.load(str(fp32)), block_size=32, is_symmetric=False, accuracy_level=4,
        op_types_to_quantize=("MatMul",), algo_config=config,
    )  # fmt: skip
    quant.process()
    graph = quant.model.model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {
        n.output[0]: [inits[x] for x in n.input[1:]]
        for n in graph.node
        if n.op_type == "MatMulNBits"
    }


def test_assembled_graph_equals_onnxruntimes_own_quantizers(
    converted: dict[str, tuple[Path, ConvertResult]],
) -> None:
    """A written graph's weights are exactly onnxruntime's: k_quant at 4 bits, its C++ min/max
    kernel (the default config) at 8."""
    import numpy as np
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        KQuantWeightOnlyQuantConfig,
    )

    src, result = converted["qwen2"]
    fp32 = fused_cache_dir(src) / "model.onnx"
    theirs = {
        4: _onnxruntime_nbits(fp32, KQuantWeightOnlyQuantConfig()),
        8: _onnxruntime_nbits(fp32, DefaultWeightOnlyQuantConfig(32, False, 4, bits=8)),
    }
    ours = onnx.load(str(result.output / "model.onnx"))
    mine = {i.name: numpy_helper.to_array(i, str(result.output)) for i in ours.graph.initializer}
    nbits = [n for n in ours.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 2 * 5 + 1  # per block: packed qkv, o, gate, up, down; and the head
    widths = set()
    for node in nbits:
        bits = next(a.i for a in node.attribute if a.name == "bits")
        widths.add(bits)
        want = theirs[bits][node.output[0]]
        got = [mine[name] for name in node.input[1:]]
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g.reshape(w.shape), w), (node.name, bits)
    assert widths == {4, 8}  # the spike recipe keeps block 1's down_proj and the head at 8
    assert (fused_cache_dir(src) / "k_quant-block32-4bit.data").is_file()


def test_agreement_with_genai_and_load_errors(
    converted: dict[str, tuple[Path, ConvertResult]], tmp_path: Path
) -> None:
    import shutil

    from edgekit.backends.onnx.genai import greedy_agreement
    from edgekit.backends.onnx.runtime import load_error

    folder = converted["qwen2"][1].output
    got = greedy_agreement(folder, PROMPT, 12)
    assert got["identical"] and got["same_prefix"] == got["n"] == 12
    assert load_error(folder) is None
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "model.onnx.data").unlink()  # the weights the graph points at are gone
    assert "cannot load" in (load_error(broken) or "")
