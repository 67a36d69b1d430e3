"""The ONNX path through the CLI: `convert --to onnx`, then `run` on the folder it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")
pytest.importorskip("onnxruntime")

from typer.testing import CliRunner

from edgekit.cli import app
from tests.fixtures.hf_checkpoints import build_tiny_hf

runner = CliRunner()


@pytest.fixture(scope="module")
def spiky_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_hf(tmp_path_factory.mktemp("hf") / "llama", "llama", spike_block=1)


@pytest.fixture(autouse=True)
def own_cache(isolated_cache: Path) -> Path:
    return isolated_cache


@pytest.mark.parametrize("precision", ["int4", "spike"])
def test_convert_to_onnx_then_run(
    precision: str, spiky_llama: Path, tmp_path: Path, own_cache: Path
) -> None:
    out = tmp_path / "out" / "llama-onnx"
    out.parent.mkdir()
    args = ["convert", str(spiky_llama), "--to", "onnx", "-o", str(out), "--json", "--top-k", "1"]
    done = runner.invoke(app, [*args, "--precision", precision])
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["precision"] == precision and Path(report["output"]) == out
    assert [k["tensor"] for k in report["kept"]] == ["blk.1.ffn_down.weight"]
    assert report["convert_s"] > 0
    # The float reference of the quality table lives in the cache folder, not beside the output.
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert any(own_cache.rglob("model.onnx"))
    assert report["eval"]["models"][0]["top1"] > 0.5
    assert (out / "plan.json").is_file() and (out / "tokenizer.json").is_file()

    ran = runner.invoke(
        app, ["run", str(out), "-p", "the river", "-n", "6", "--temp", "0", "--json"]
    )
    assert ran.exit_code == 0, ran.stderr
    stats = json.loads(ran.stdout)["stats"]
    assert stats["generated_tokens"] > 0 and stats["decode_tokens_per_s"] > 0


def test_unknown_format_is_one_clear_error(spiky_llama: Path) -> None:
    done = runner.invoke(app, ["convert", str(spiky_llama), "--to", "tflite"])
    assert done.exit_code == 2 and "unknown output format" in done.stderr


def test_the_measured_recipe_is_refused_for_int8_onnx_before_any_work(
    spiky_llama: Path, tmp_path: Path
) -> None:
    out = tmp_path / "never"
    args = ["convert", str(spiky_llama), "--to", "onnx", "--recipe", "measured", "-o", str(out)]
    done = runner.invoke(app, [*args, "--precision", "int8"])
    assert done.exit_code == 2 and "--precision int4" in done.stderr
    assert not out.exists()


def test_eval_an_onnx_folder_against_its_fp32_export(spiky_llama: Path, tmp_path: Path) -> None:
    fp32, int8 = tmp_path / "fp32", tmp_path / "int8"
    for out, precision in ((fp32, "fp32"), (int8, "int8")):
        args = ["convert", str(spiky_llama), "--to", "onnx", "--precision", precision]
        done = runner.invoke(app, [*args, "-o", str(out), "--no-eval", "--json"])
        assert done.exit_code == 0, done.stderr
    done = runner.invoke(
        app, ["eval", str(int8), "-r", str(fp32), "--eval-windows", "1", "--speed", "--json"]
    )
    assert done.exit_code == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["reference"]["kld"] == 0 or data["reference"]["kld"] is None
    row = data["models"][0]
    assert row["kld"] > 0 and 0 < row["top1"] <= 1 and row["decode_tok_s"] > 0


def test_the_measured_plan_is_the_default_for_int4_onnx() -> None:
    from edgekit.cli.convert import default_recipe

    assert default_recipe("onnx", "int4") == "measured"
    assert default_recipe("onnx", "int8") == "spike"  # no 4/8-bit plan to measure
    assert default_recipe("onnx", "int4", 0.5) == "spike"  # a spike option was given
    assert default_recipe("gguf", "int4") == "measured"
    assert default_recipe("gguf", "int4", None, 3) == "spike"
