"""llama.cpp's own tools behind edgekit's measured convert, on a tiny model with 256-wide rows:
stock mixes from a dry run, the imatrix, composed probes equal to the quantizer's own output,
KLD equal to llama-perplexity's, budgets kept, and every output loading in llama-cli."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp import ggml_quant, tools
from edgekit.backends.llama_cpp.sensitivity import candidates, weighted_errors
from edgekit.converters.measured import Workspace, measured_plans, target_for, write_measured
from edgekit.gguf import imatrix as imx
from edgekit.gguf.compose import float_rows, write_gguf
from edgekit.gguf.reader import read_header
from edgekit.quant.mixplan import padded_bytes

Q = GGMLQuantizationType
pytestmark = pytest.mark.timeout(600)
TEXT = " ".join(
    f"The {w} of the river ran north past {n} old mills, and the city kept its music."
    for n, w in enumerate(["water", "light", "song", "story", "memory", "colour"] * 12)
)


def types_in(path: Path) -> dict[str, GGMLQuantizationType]:
    return {t.name: t.ggml_type for t in read_header(path).tensors}


def tensor_bytes(path: Path) -> dict[str, bytes]:
    h = read_header(path)
    raw = path.read_bytes()
    return {
        t.name: raw[h.data_offset + t.offset : h.data_offset + t.offset + t.n_bytes]
        for t in h.tensors
    }


@pytest.fixture(scope="module")
def ws(tiny_base_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    cache = tmp_path_factory.mktemp("measured")
    return Workspace(tiny_base_gguf, TEXT, threads=2, cache=cache)


def test_dry_run_gives_the_types_llama_quantize_writes(ws: Workspace, tmp_path: Path) -> None:
    for mix in ("Q3_K_M", "Q2_K"):
        out = tmp_path / f"{mix}.gguf"
        tools.quantize(tools.QuantizeRequest(ws.base, out, mix, imatrix=ws.imatrix()))
        assert tools.stock_types(ws.base, mix) == types_in(out)
    assert types_in(tmp_path / "Q3_K_M.gguf")["blk.0.attn_v.weight"] != Q.Q3_K  # the mix's bumps


def test_imatrix_is_gguf_and_changes_the_quantization(ws: Workspace, tmp_path: Path) -> None:
    im = ws.imatrix()
    assert im.read_bytes()[:4] == b"GGUF"
    keys = read_header(im).metadata
    assert any(k.startswith("imatrix.") for k in keys)
    plain, weighted = tmp_path / "plain.gguf", tmp_path / "weighted.gguf"
    tools.quantize(tools.QuantizeRequest(ws.base, plain, "Q2_K", pure=True))
    tools.quantize(tools.QuantizeRequest(ws.base, weighted, "Q2_K", imatrix=im, pure=True))
    a, b = tensor_bytes(plain), tensor_bytes(weighted)
    assert a["blk.0.ffn_down.weight"] != b["blk.0.ffn_down.weight"]


def test_in_process_quantizer_writes_llama_quantize_bytes(ws: Workspace, tmp_path: Path) -> None:
    """ggml's kernels called in process, with the imatrix as llama-quantize weighs it, give the
    tool's bytes; a file composed from them is the tool's file, tensor for tensor."""
    h = read_header(ws.base)
    names = ws.quantizable()
    weights = ws.weights()
    mix = {
        n: candidates(t)[i % len(candidates(t))]
        for i, (n, t) in enumerate((t.name, t) for t in h.tensors if t.name in names)
    }
    chosen = []
    for t in h.tensors:
        q = mix.get(t.name, t.ggml_type)
        rows = float_rows(h, t)
        data = (
            ggml_quant.quantize(rows, q, weights.get(t.name), threads=2)
            if t.name in mix
            else (rows.reshape(-1).view("uint8"))
        )
        chosen.append((t, q, data))
    composed = write_gguf(h, tmp_path / "composed.gguf", chosen)
    direct = tmp_path / "direct.gguf"
    req = tools.QuantizeRequest(ws.base, direct, "Q8_0", types=mix, imatrix=ws.imatrix())
    assert tools.quantize(req) == types_in(direct)
    assert types_in(composed) == types_in(direct)
    assert len(set(mix.values())) >= 4
    assert tensor_bytes(composed) == tensor_bytes(direct)


def test_dequantize_round_trips_and_errors_fall_with_bits(ws: Workspace) -> None:
    h = read_header(ws.base)
    t = next(t for t in h.tensors if t.name == "blk.0.ffn_down.weight")
    x = float_rows(h, t)
    q8 = ggml_quant.quantize(x, Q.Q8_0)
    assert abs(ggml_quant.dequantize(q8, Q.Q8_0, t.shape[0]) - x).max() < 0.01 * abs(x).max()
    errors = weighted_errors(h, [t], ws.weights())[t.name]
    ladder = [errors[q] for q in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0)]
    assert ladder == sorted(ladder, reverse=True) and ladder[-1] < 0.05 * ladder[0]


def test_imatrix_weights_are_sums_over_counts(ws: Workspace) -> None:
    raw = imx.read_raw(ws.imatrix())
    sums, counts = raw["blk.0.ffn_down.weight"]
    w = ws.weights()["blk.0.ffn_down.weight"]
    assert counts[0] > 0 and w == pytest.approx(sums / counts[0], rel=1e-6)
    # the workspace's imatrix is edgekit's own; its pass also gave per-token spike scores
    assert set(ws.spike_prior()) == set(raw) and all(s >= 1 for s in ws.spike_prior().values())
    assert ws.spike_prior() != imx.channel_spikes(ws.weights())


def test_probe_kld_is_evaluate_kld_on_the_same_positions(ws: Workspace) -> None:
    from edgekit.backends.llama_cpp.eval import Windows, evaluate
    from edgekit.backends.llama_cpp.probe_kld import ProbeKld

    cand = ws.quantized("Q2_K", pure=True)
    scorer = ProbeKld(TEXT, n_ctx=64, windows=2, first=0)
    scorer.set_reference(ws.base)
    assert scorer.kld(ws.base) == pytest.approx(0.0, abs=1e-6)
    _, (row,) = evaluate(ws.base, [cand], TEXT, Windows(n_ctx=64, max_windows=2))
    assert row.kld > 1e-3
    assert scorer.kld(cand) == pytest.approx(row.kld, rel=1e-3)


def test_patched_probe_scores_what_the_same_probe_file_scores(
    ws: Workspace, tmp_path: Path
) -> None:
    """A probe written over the loaded reference's scratch copy scores what the same bytes in a
    file of their own score; the copy is restored after each probe, the reference never
    written, and the copy gone at close."""
    import hashlib
    import shutil

    import numpy as np

    from edgekit.backends.llama_cpp.probe_kld import ProbeKld
    from edgekit.backends.llama_cpp.sensitivity import as_float

    h = read_header(ws.base)
    t = next(t for t in h.tensors if t.name == "blk.0.ffn_down.weight")
    packed = ggml_quant.quantize(float_rows(h, t), Q.Q2_K)
    data = as_float(ggml_quant.dequantize(packed, Q.Q2_K, t.shape[0]), t.ggml_type)
    at = h.data_offset + t.offset
    assert len(data) == t.n_bytes
    probe_file = tmp_path / "probe.gguf"
    shutil.copy(ws.base, probe_file)
    with probe_file.open("r+b") as f:
        f.seek(at)
        f.write(data.tobytes())
    before = hashlib.sha256(ws.base.read_bytes()).hexdigest()
    scratch = tmp_path / "scratch.gguf"
    scorer = ProbeKld(TEXT, n_ctx=64, windows=2, first=8)
    scorer.set_reference(ws.base, scratch)
    try:
        patched = scorer.kld_patched([(at, data)])
        assert patched > 1e-4
        assert patched == pytest.approx(scorer.kld(probe_file), rel=1e-4)
        assert np.array_equal(np.fromfile(scratch, np.uint8), np.fromfile(ws.base, np.uint8))
        assert scorer.kld_patched([]) == 0.0
    finally:
        scorer.close()
    assert not scratch.exists()
    assert hashlib.sha256(ws.base.read_bytes()).hexdigest() == before


def test_kld_matches_llama_perplexity(ws: Workspace, tmp_path: Path) -> None:
    from edgekit.backends.llama_cpp.eval import Windows, evaluate

    cand = ws.quantized("Q2_K", pure=True)
    text_file = tmp_path / "t.txt"
    text_file.write_text(TEXT * 3)
    theirs = tools.kl_divergence(ws.base, cand, text_file, tmp_path, n_ctx=64, chunks=4)
    _, (ours,) = evaluate(
        ws.base, [cand], TEXT * 3, Windows(n_ctx=64, max_windows=4, second_half=True)
    )
    assert theirs.kld > 1e-3  # a real difference to compare, not two zeros
    assert ours.kld == pytest.approx(theirs.kld, rel=0.02)
    assert ours.top1 == pytest.approx(theirs.top1, abs=0.02)


def test_measured_mix_fits_the_stock_budget_and_loads(ws: Workspace, tmp_path: Path) -> None:
    target, stock = target_for(ws, "Q3_K_M", None)
    (p, *_), measured = measured_plans(ws, target, stock)
    assert measured.probes and all(p.kld > 0 for p in measured.probes)
    assert padded_bytes(p) <= target.budget_bytes
    out = write_measured(ws, tmp_path / "m.gguf", p, measured, "test")
    assert types_in(out) == p.types
    # no larger than llama.cpp's mix with the imatrix or without (their fallbacks differ)
    for imatrix in (True, False):
        assert out.stat().st_size <= ws.quantized("Q3_K_M", False, imatrix).stat().st_size
    assert out.with_suffix(".plan.json").exists()
    tools.cli_smoke(out)


@pytest.mark.parametrize("bpw", [4.0, 5.3])
def test_target_bpw_within_half_a_percent_never_over(ws: Workspace, bpw: float) -> None:
    target, stock = target_for(ws, None, bpw)
    (p, *_), _ = measured_plans(ws, target, stock)
    n = sum(d.n_elements for d in p.decisions)
    got = 8 * padded_bytes(p) / n
    assert got <= bpw
    assert got >= 0.995 * bpw


def test_a_failed_tool_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(tools.ToolError, match="llama-quantize failed"):
        tools.stock_types(bad, "Q4_K_M")


def test_planner_fallbacks_match_llama_quantize(tmp_path: Path) -> None:
    """Rows of 640 (the default model's): what the pure planner predicts is what the tool picks."""
    from edgekit.quant.planner import compatible
    from tests.fixtures.tiny_models import write_tiny_llama

    base = write_tiny_llama(
        tmp_path / "w640.gguf", n_layers=1, n_embd=640, n_ff=1280, n_head=5, n_head_kv=1
    )
    for mix, want in (("Q2_K", Q.Q2_K), ("Q3_K_S", Q.Q3_K), ("Q4_K_S", Q.Q4_K), ("Q6_K", Q.Q6_K)):
        got = tools.quantize(tools.QuantizeRequest(base, base, mix, pure=True, dry_run=True))
        assert got["blk.0.attn_q.weight"] == compatible(want, 640)[0], mix


def test_own_imatrix_agrees_with_llama_imatrix(ws: Workspace, tmp_path: Path) -> None:
    """The imatrix from edgekit's own recorded activations (an eval callback in llama.cpp's
    forward pass) is llama-imatrix's: same keys, tensors and counts; sums equal to 1e-4 of each
    tensor's largest (both sum the same float32 activations; only the order of additions and
    the batching differ, ~1e-6 measured on the default model), and llama-quantize loads it."""
    from edgekit.backends.llama_cpp.imatrix_collect import collect

    c = collect(ws.base, TEXT, n_ctx=256, chunks=64)
    own = imx.write(tmp_path / "own.gguf", c.sums, c.counts, c.chunks, c.chunk_size, ["t"])
    llama = tools.imatrix(ws.base, ws.text_file, tmp_path / "llama-imatrix.gguf")
    theirs = read_header(llama).metadata
    assert set(read_header(own).metadata) == set(theirs)
    assert read_header(own).metadata["imatrix.chunk_count"] == theirs["imatrix.chunk_count"]
    ours, ref = imx.read_raw(own), imx.read_raw(llama)
    assert set(ours) == set(ref) and len(ref) > 0
    for name, (sums, counts) in ref.items():
        assert ours[name][1].tolist() == counts.tolist(), name
        assert abs(ours[name][0] - sums).max() <= 1e-4 * abs(sums).max(), name
    out = tmp_path / "q.gguf"
    tools.quantize(tools.QuantizeRequest(ws.base, out, "Q2_K", imatrix=own, pure=True))
    assert types_in(out)["blk.0.ffn_down.weight"] == Q.Q2_K


def test_cli_measured_convert_needs_no_torch_calibration(
    tiny_base_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    """`edgekit convert --mix`: the spike prior comes from the imatrix, so no --scores and no
    torch run are needed; the output fits the stock file's size and its plan is logged."""
    import json

    def no_torch(*_: object, **__: object) -> None:
        raise AssertionError("the measured recipe ran a torch calibration")

    monkeypatch.setattr("edgekit.converters.calibrate.calibrate", no_torch)

    import typer
    from typer.testing import CliRunner

    from edgekit.cli.convert import convert_command

    app = typer.Typer()
    app.command("convert")(convert_command)
    app.command("other")(lambda: None)
    calib = tmp_path / "calib.txt"
    calib.write_text(TEXT)
    out = tmp_path / "m.gguf"
    args = ["convert", str(tiny_base_gguf), "--mix", "Q3_K_M", "--calib-file", str(calib)]
    r = CliRunner().invoke(app, [*args, "-o", str(out), "--json", "--no-eval"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["file_size"] == out.stat().st_size and doc["target"] == "Q3_K_M"
    assert out.with_suffix(".plan.json").exists()
    assert (
        out.stat().st_size
        <= Workspace(tiny_base_gguf, TEXT, cache=tmp_path / "c")
        .quantized("Q3_K_M", pure=False)
        .stat()
        .st_size
    )


def test_pinned_types_never_touch_a_file_beside_the_output(
    tiny_base_gguf: Path, tmp_path: Path
) -> None:
    # The list of pinned types is a scratch file of its own: a user's file with the name the
    # scratch file once had (OUT.types.txt) is neither overwritten nor deleted.
    out = tmp_path / "o.gguf"
    mine = tmp_path / "o.gguf.types.txt"
    mine.write_text("my notes\n")
    pinned = {"output.weight": Q.Q8_0}
    tools.quantize(tools.QuantizeRequest(tiny_base_gguf, out, "Q4_0", types=pinned))
    assert mine.read_text() == "my notes\n"
    assert types_in(out)["output.weight"] == Q.Q8_0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.gguf", "o.gguf.types.txt"]
