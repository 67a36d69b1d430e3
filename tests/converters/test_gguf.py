"""The writer (llama.cpp's quantizer with per-tensor overrides), metadata, eval and bad inputs."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import typer
from gguf import GGMLQuantizationType, LlamaFileType
from typer.testing import CliRunner

from edgekit.backends.llama_cpp import quantize
from edgekit.converters.gguf import plan_for, read_plan_metadata, write_planned
from edgekit.errors import NotAGGUFError, OutputPathError, TruncatedModelError
from edgekit.gguf.metadata import add_metadata
from edgekit.gguf.reader import read_header
from edgekit.quant.planner import Spike
from tests.fixtures.convert import synthetic_profile

Q = GGMLQuantizationType
pytestmark = pytest.mark.timeout(300)


def _spike_plan(base: Path) -> object:
    return plan_for(base, synthetic_profile(), Q.Q4_K, Spike(threshold=100.0))


def test_written_file_holds_exactly_the_planned_types(
    tiny_base_gguf: Path,
    tmp_path: Path,
) -> None:
    p = plan_for(tiny_base_gguf, synthetic_profile(), Q.Q4_K, Spike(threshold=100.0))
    written = write_planned(tiny_base_gguf, tmp_path / "out.gguf", p, synthetic_profile())
    got = {t.name: t.ggml_type for t in read_header(written.path).tensors}
    assert got == p.types
    assert got["blk.1.ffn_down.weight"] == Q.Q8_0  # the planted spike, kept high
    assert got["blk.0.ffn_down.weight"] == Q.Q4_K
    assert got["output.weight"] == Q.Q6_K
    assert got["blk.0.attn_norm.weight"] == Q.F32
    meta = read_plan_metadata(written.path)
    assert meta["method"] == "spike"
    assert meta["kept_tensors"] == ["blk.1.ffn_down.weight"]
    assert meta["kept_scores"][0] == pytest.approx(400 / 1.01, rel=1e-5)
    assert meta["calibration_hash"] == "sha256:test"
    plan_doc = json.loads(written.plan_path.read_text())
    assert plan_doc["recipe"] == "spike" and len(plan_doc["tensors"]) == len(got)
    assert sorted(os.listdir(tmp_path)) == ["out.gguf", "out.plan.json"]  # no temp files


def test_written_file_runs_in_llama_cpp(tiny_base_gguf: Path, tmp_path: Path) -> None:
    from edgekit.backends.llama_cpp.eval import Windows, evaluate

    p = plan_for(tiny_base_gguf, synthetic_profile(), Q.Q4_K, Spike(threshold=100.0))
    out = write_planned(tiny_base_gguf, tmp_path / "q.gguf", p, synthetic_profile()).path
    text = " ".join(["the river and the city of the north"] * 40)
    ref, (row,) = evaluate(
        tiny_base_gguf, [out], text, Windows(n_ctx=64, n_batch=32, max_windows=2)
    )
    assert ref.kld == pytest.approx(0.0, abs=1e-6) and ref.top1 == 1.0
    assert row.n_tokens == ref.n_tokens > 0
    assert 0.0 <= row.kld < 0.5 and 0.0 < row.top1 <= 1.0 and row.ppl > 1.0
    assert row.bits_per_weight < ref.bits_per_weight


def test_metadata_rewrite_keeps_tensors_and_replaces_keys(
    tiny_base_gguf: Path,
    tmp_path: Path,
) -> None:
    first = tmp_path / "a.gguf"
    add_metadata(tiny_base_gguf, first, {"x.k": "one", "x.n": 3, "x.f": [1.0, 2.5]})
    second = tmp_path / "b.gguf"
    add_metadata(first, second, {"x.k": "two"})
    h0, h2 = read_header(tiny_base_gguf), read_header(second)
    assert h2.metadata["x.k"] == "two" and h2.metadata["x.n"] == 3
    assert h2.metadata["x.f"] == [1.0, 2.5]
    assert [t.name for t in h2.tensors] == [t.name for t in h0.tensors]
    with tiny_base_gguf.open("rb") as a, second.open("rb") as b:
        a.seek(h0.data_offset)
        b.seek(h2.data_offset)
        assert a.read() == b.read()


def test_corrupt_base_gguf_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all, just some bytes" * 4)
    with pytest.raises(NotAGGUFError):
        quantize.write_gguf(bad, tmp_path / "o.gguf", None, LlamaFileType.MOSTLY_Q8_0)
    assert not (tmp_path / "o.gguf").exists()


def test_truncated_base_gguf_is_one_clear_error(tiny_base_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_base_gguf.read_bytes()[:-1000])
    with pytest.raises(TruncatedModelError):
        quantize.write_gguf(cut, tmp_path / "o.gguf", None, LlamaFileType.MOSTLY_Q8_0)


def test_unwritable_output_folder(
    tiny_base_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: make the permission check see the mode
        monkeypatch.setattr("edgekit.outputs.os.access", lambda *a, **k: False)
    with pytest.raises(OutputPathError, match="cannot write"):
        quantize.write_gguf(tiny_base_gguf, locked / "o.gguf", None, LlamaFileType.MOSTLY_Q8_0)


def test_output_in_missing_folder_or_on_a_directory(
    tiny_base_gguf: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(OutputPathError, match="does not exist"):
        quantize.write_gguf(
            tiny_base_gguf, tmp_path / "no" / "o.gguf", None, LlamaFileType.MOSTLY_Q8_0
        )
    with pytest.raises(OutputPathError, match="directory"):
        quantize.write_gguf(tiny_base_gguf, tmp_path, None, LlamaFileType.MOSTLY_Q8_0)


def test_not_enough_space_is_refused_before_writing(
    tiny_base_gguf: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(OutputPathError, match="not enough disk space"):
        quantize.write_gguf(
            tiny_base_gguf,
            tmp_path / "o.gguf",
            None,
            LlamaFileType.MOSTLY_Q8_0,
            expected_bytes=2**62,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", ["quantize", "metadata"])
def test_disk_full_mid_write_leaves_nothing(
    tiny_base_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        target = Path(str(args[1]))
        target.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(quantize, "run_quantize" if stage == "quantize" else "add_metadata", full)
    p = plan_for(tiny_base_gguf, synthetic_profile(), Q.Q4_K, Spike(threshold=100.0))
    with pytest.raises(OutputPathError, match="disk filled up"):
        write_planned(tiny_base_gguf, tmp_path / "o.gguf", p, synthetic_profile())
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_leaves_nothing(
    tiny_base_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        Path(str(args[1])).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize, "run_quantize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quantize.write_gguf(tiny_base_gguf, tmp_path / "o.gguf", None, LlamaFileType.MOSTLY_Q8_0)
    assert list(tmp_path.iterdir()) == []


def _cli() -> typer.Typer:
    from edgekit.cli.convert import convert_command
    from edgekit.cli.eval import eval_command

    app = typer.Typer()
    app.command("convert")(convert_command)
    app.command("eval")(eval_command)
    return app


def test_cli_dry_run_prints_plan_and_size_and_writes_nothing(
    tiny_base_gguf: Path,
    tmp_path: Path,
) -> None:
    scores = synthetic_profile().save(tmp_path / "s.json")
    out = tmp_path / "o.gguf"
    args = ["convert", str(tiny_base_gguf), "--scores", str(scores), "-o", str(out)]
    r = CliRunner().invoke(_cli(), [*args, "--dry-run", "--threshold", "100", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["output"] is None and doc["file_size"] > 0
    assert [k["tensor"] for k in doc["kept"]] == ["blk.1.ffn_down.weight"]
    assert not out.exists()


def test_cli_convert_then_eval(tiny_base_gguf: Path, tmp_path: Path) -> None:
    scores = synthetic_profile().save(tmp_path / "s.json")
    out = tmp_path / "o.gguf"
    text = tmp_path / "eval.txt"
    text.write_text(" ".join(["the music of the river in the north"] * 60))
    args = ["convert", str(tiny_base_gguf), "--scores", str(scores), "-o", str(out), "--json"]
    args += ["--recipe", "spike"]
    r = CliRunner().invoke(_cli(), [*args, "--eval-file", str(text), "--eval-windows", "1"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert 0.0 <= doc["eval"]["models"][0]["kld"] < 0.5 and out.exists()
    r = CliRunner().invoke(
        _cli(), ["eval", str(out), "-r", str(tiny_base_gguf), "--eval-file", str(text), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["models"][0]["kld"] >= 0.0


def test_cli_bad_inputs_are_one_message_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"x" * 100)
    r = CliRunner().invoke(_cli(), ["convert", str(bad), "--scores", "nope.json"])
    assert r.exit_code == 2
    r = CliRunner().invoke(_cli(), ["convert", str(bad), "--type", "Q9_Z", "--json"])
    assert r.exit_code == 2 and json.loads(r.stdout)["error"] == "PlanError"
