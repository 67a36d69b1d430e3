"""The CLI end to end on a tiny real model: output, --json, and one clear message per user error."""

from __future__ import annotations

import io
import json
import re
import struct
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


# --- issue 14: hostile input end to end ---------------------------------------------------------


def _edited(model: Path, tmp_path: Path, **kv: str | int | float) -> Path:
    """A real copy of `model` (tensor data included, so llama.cpp can load it) with `kv` set."""
    from edgekit.gguf.metadata import add_metadata

    out = tmp_path / "edited.gguf"
    add_metadata(model, out, kv)
    return out


@pytest.mark.parametrize(
    "kv",
    [
        {"llama.rope.freq_base": float("nan")},  # ran with exit 0, printing garbage
        {"tokenizer.ggml.bos_token_id": 2**31},  # ran with exit 0, generating 0 tokens
        {"llama.block_count": 2**40},  # grew until the OOM killer
    ],
)
def test_corrupt_but_loadable_model_is_one_clear_error(
    tiny_model: Path, tmp_path: Path, kv: dict[str, int | float]
) -> None:
    bad = _edited(tiny_model, tmp_path, **kv)
    key = next(iter(kv)).split(".")[-1]
    _assert_user_error(*invoke("run", str(bad), "-p", "the city", "-n", "4"), key)
    code, out, _ = invoke("inspect", str(bad), "--json")
    assert code == 2 and key in json.loads(out)["message"]


def _poison_tensor(model: Path, tmp_path: Path, name: str) -> Path:
    from edgekit.gguf.reader import read_header

    header = read_header(model)
    t = next(t for t in header.tensors if t.name == name)
    data = bytearray(model.read_bytes())
    start = header.data_offset + t.offset
    data[start : start + t.n_bytes] = struct.pack("<f", float("nan")) * (t.n_bytes // 4)
    out = tmp_path / "nan.gguf"
    out.write_bytes(bytes(data))
    return out


def test_nan_weights_are_caught_by_the_first_forward_pass(tiny_model: Path, tmp_path: Path) -> None:
    bad = _poison_tensor(tiny_model, tmp_path, "output_norm.weight")
    _assert_user_error(*invoke("run", str(bad), "-p", "the city", "-n", "4"), "non-finite")


def test_llama_cpp_load_failure_does_not_blame_the_architecture(
    tiny_model: Path, tmp_path: Path
) -> None:
    # Four KV heads declared, two stored: the header is consistent, the tensors are not.
    bad = _edited(tiny_model, tmp_path, **{"llama.attention.head_count_kv": 4})
    code, out, err = invoke("run", str(bad), "-p", "the city", "-n", "4")
    _assert_user_error(code, out, err, "could not load")
    assert "newer" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-n", "0"], "--max-tokens"),
        (["-n", "-1"], "--max-tokens"),
        (["--ctx", "0"], "--ctx"),
        (["--ctx", "-5"], "--ctx"),
        (["--temp", "-1"], "--temp"),
        (["--temp", "nan"], "--temp"),
        (["--top-p", "-0.5"], "--top-p"),
        (["--top-k", "-3"], "--top-k"),
        (["--seed", str(2**40)], "--seed"),
    ],
)
def test_impossible_options_are_refused(tiny_model: Path, args: list[str], needle: str) -> None:
    _assert_user_error(*invoke("run", str(tiny_model), "-p", "the city", *args), needle)


def test_dashboard_refuses_impossible_options(tiny_model: Path) -> None:
    _assert_user_error(*invoke("dashboard", str(tiny_model), "-n", "0"), "--max-tokens")


def test_prompt_with_invalid_utf8_is_one_clear_error(tiny_model: Path) -> None:
    # What Python makes of `-p $'hi \xff\xfe'` in a UTF-8 locale (surrogateescape).
    prompt = b"hi \xff\xfe".decode("utf-8", "surrogateescape")
    _assert_user_error(*invoke("run", str(tiny_model), "-p", prompt), "not valid UTF-8", "0xff")
    code, out, _ = invoke("run", str(tiny_model), "-p", prompt, "--json")
    assert code == 2 and json.loads(out)["error"] == "PromptEncodingError"


def test_too_long_prompt_hint_is_capped_at_the_model_context(tiny_model: Path) -> None:
    # tiny_model's own context is 512 tokens.
    code, out, err = invoke("run", str(tiny_model), "--ctx", "64", "-p", "the city " * 10)
    _assert_user_error(code, out, err, "context holds 64")
    suggested = [int(n) for n in re.findall(r"--ctx (\d+)", err)]
    assert suggested and all(64 < n <= 512 for n in suggested)
    code, out, err = invoke("run", str(tiny_model), "--ctx", "64", "-p", "the city " * 400)
    _assert_user_error(code, out, err, "longer than the model's context of 512")


def test_errors_are_never_cropped_off_a_terminal(tmp_path: Path) -> None:
    # CliRunner's stderr is not a terminal, like a CI log or 2>err.txt.
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / "model-with-a-long-name.gguf"
    code, out, err = invoke("run", str(deep), "-p", "hi")
    _assert_user_error(code, out, err, str(deep))


def test_error_panel_wraps_on_a_narrow_terminal() -> None:
    from rich.console import Console

    from edgekit.cli import render
    from edgekit.errors import EdgekitError

    message = "device profile /x/" + "y" * 90 + "/mine.toml: unknown key [runtime] 'gpu_layer'"
    console = Console(file=io.StringIO(), force_terminal=True, width=40, color_system=None)
    original = render.err_console
    render.err_console = console
    try:
        render.render_error(EdgekitError(message, hint="Valid keys in [runtime]: threads."))
    finally:
        render.err_console = original
    text = console.file.getvalue()  # type: ignore[attr-defined]
    inner = "".join(line.strip("│ ").rstrip() for line in text.splitlines()[1:-1])
    assert message.replace(" ", "") in inner.replace(" ", "")
    assert "[runtime]" in inner  # shown as text, not swallowed as markup


def test_json_error_object_even_for_a_crash(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug inside the reader (simulated) must still give --json users a JSON object.
    import edgekit.gguf.reader

    def crash(path: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(edgekit.gguf.reader, "read_header", crash)
    code, out, err = invoke("inspect", str(tiny_model), "--json")
    assert code == 1 and json.loads(out)["error"] == "InternalError"
    assert "simulated bug" in json.loads(out)["message"] and "Traceback" in err


def test_broken_user_profile_does_not_break_inspect(tiny_model: Path, user_config: Path) -> None:
    (user_config / "broken.toml").write_text("[runtime]\ngpu_layer = 5\n")
    code, out, err = invoke("inspect", str(tiny_model))
    assert code == 0 and "broken" in err and "gpu_layer" in err
    code, out, _ = invoke("inspect", str(tiny_model), "--json")
    data = json.loads(out)
    assert code == 0 and "cpu" in data["memory"] and "broken" in data["broken_profiles"]
    code, out, _ = invoke("devices", "--json")
    listed = {p["name"]: p for p in json.loads(out)}
    assert code == 0 and listed["broken"]["broken"] and not listed["cpu"]["broken"]
    _assert_user_error(*invoke("run", str(tiny_model), "-d", "broken", "-p", "hi"), "gpu_layer")


def test_shadowed_builtin_is_reported(user_config: Path) -> None:
    (user_config / "cpu.toml").write_text("[runtime]\nthreads = 1\n")
    code, out, _ = invoke("devices")
    assert code == 0 and "replaces the built-in cpu" in out
    code, out, _ = invoke("devices", "--json")
    cpu = next(p for p in json.loads(out) if p["name"] == "cpu")
    assert cpu["user"] and cpu["shadows"].endswith("cpu.toml")


def test_names_from_the_file_are_text_not_markup(tiny_model: Path, tmp_path: Path) -> None:
    # A model's name is the file's to choose; rich markup in it used to crash the banner.
    hostile = "[/dim]oops[bold"
    bad = _edited(tiny_model, tmp_path, **{"general.name": hostile})
    code, out, err = invoke("run", str(bad), "-p", "the city", "-n", "2")
    assert code == 0 and hostile in err
    code, out, _ = invoke("inspect", str(bad), "--tensors")
    assert code == 0 and hostile in out
