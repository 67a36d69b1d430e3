"""The CLI end to end on a tiny real model: output, --json, and one clear message per user error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app

runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_run_streams_text_and_prints_stats(tiny_model: Path) -> None:
    code, out, err = invoke("run", str(tiny_model), "-p", "the city", "-n", "12", "--seed", "3")
    assert code == 0
    assert out.strip()
    assert "decode 12 tok" in err and "tok/s" in err and "peak RSS" in err and "TTFT" in err


def test_run_json_is_one_object(tiny_model: Path) -> None:
    code, out, _ = invoke(
        "run", str(tiny_model), "-p", "the city", "-n", "8", "--temp", "0", "--json"
    )
    assert code == 0
    data = json.loads(out)
    stats = data["stats"]
    assert stats["generated_tokens"] == 8 and stats["decode_tokens_per_s"] > 0
    assert stats["prompt_tokens"] > 0 and stats["peak_rss_bytes"] > 0
    assert data["memory_estimate"]["fits"] is True and data["device"] == "cpu"


def test_greedy_runs_are_reproducible_and_seeds_matter(tiny_model: Path) -> None:
    def text(*extra: str) -> str:
        code, out, _ = invoke(
            "run", str(tiny_model), "-p", "the river", "-n", "16", "--json", *extra
        )
        assert code == 0
        return str(json.loads(out)["text"])

    assert text("--temp", "0") == text("--temp", "0")
    assert text("--seed", "1", "--temp", "1.5") == text("--seed", "1", "--temp", "1.5")
    assert text("--seed", "1", "--temp", "1.5") != text("--seed", "2", "--temp", "1.5")


def test_chat_mode_reads_turns_until_eof(tiny_model: Path) -> None:
    code, out, _ = invoke(
        "run", str(tiny_model), "-n", "4", "--json", stdin="hello there\n\nthe music\n"
    )
    assert code == 0
    decoder, text = json.JSONDecoder(), out.strip()
    objects, pos = [], 0
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        objects.append(obj)
        pos = end + 1
    assert len(objects) == 2  # one object per turn; the blank line is not a turn
    assert all(o["stats"]["generated_tokens"] <= 4 for o in objects)


def test_inspect_json(tiny_model: Path) -> None:
    code, out, _ = invoke("inspect", str(tiny_model), "--json", "--tensors")
    assert code == 0
    data = json.loads(out)
    assert data["architecture"] == "llama" and data["blocks"] == 2
    assert len(data["tensors"]) == 21 and set(data["memory"]) >= {"rpi4", "cpu", "cuda"}
    assert data["metadata"]["tokenizer.ggml.tokens"].startswith("[")


def test_inspect_table(tiny_model: Path) -> None:
    code, out, _ = invoke("inspect", str(tiny_model))
    assert code == 0
    for heading in ("Model", "Tensor types", "Metadata", "Memory estimate per device profile"):
        assert heading in out


def test_devices_list_and_show() -> None:
    code, out, _ = invoke("devices", "--json")
    assert code == 0 and {p["name"] for p in json.loads(out)} >= {"rpi4", "rpi5", "cpu"}
    code, out, _ = invoke("devices", "show", "rpi5", "--json")
    assert code == 0 and json.loads(out)["threads"] == 4
    code, out, _ = invoke("devices", "show", "rpi4")
    assert code == 0 and "Cortex-A72" in out


def _assert_user_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in out + err
    for needle in needles:
        assert needle in err


def test_missing_file(tmp_path: Path) -> None:
    _assert_user_error(*invoke("run", str(tmp_path / "x.gguf"), "-p", "hi"), "not found")


def test_not_a_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "weights.gguf"
    bogus.write_text("definitely not a model")
    _assert_user_error(*invoke("run", str(bogus), "-p", "hi"), "not a GGUF")


def test_truncated_gguf(tiny_model: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_model.read_bytes()[:-1000])
    _assert_user_error(*invoke("run", str(cut), "-p", "hi"), "truncated")


def test_unknown_device(tiny_model: Path) -> None:
    _assert_user_error(*invoke("run", str(tiny_model), "-d", "toaster", "-p", "hi"), "toaster")


def test_model_too_big_is_refused_before_loading(tiny_model: Path, user_config: Path) -> None:
    (user_config / "watch.toml").write_text("[runtime]\nthreads = 1\n[memory]\nbudget_mb = 1\n")
    _assert_user_error(
        *invoke("run", str(tiny_model), "-d", "watch", "-p", "hi"), "needs about", "budget is 1 MiB"
    )


def test_empty_prompt(tiny_model: Path) -> None:
    _assert_user_error(*invoke("run", str(tiny_model), "-p", "   "), "prompt is empty")


def test_prompt_longer_than_context(tiny_model: Path) -> None:
    long_prompt = "the city of music " * 200
    _assert_user_error(
        *invoke("run", str(tiny_model), "--ctx", "64", "-p", long_prompt), "context holds 64"
    )


def test_errors_as_json(tmp_path: Path) -> None:
    code, out, _ = invoke("inspect", str(tmp_path / "x.gguf"), "--json")
    assert code == 2 and json.loads(out)["error"] == "ModelNotFoundError"


def test_debug_env_reraises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_DEBUG", "1")
    result = runner.invoke(app, ["inspect", str(tmp_path / "x.gguf")])
    assert result.exception is not None and type(result.exception).__name__ == "ModelNotFoundError"


def test_gpu_profile_on_a_cpu_only_build_says_so(tiny_model: Path) -> None:
    import llama_cpp

    code, _, err = invoke("run", str(tiny_model), "-d", "cuda", "-p", "the", "-n", "2")
    assert code == 0
    assert ("no GPU back end" in err) != bool(llama_cpp.llama_supports_gpu_offload())
