"""Issue 34, item 6: the terminal and the streams. Each test failed before its fix: a FIFO hung
`run`, chat with stdin closed and stdout on a full disk gave tracebacks, names from files drove the
terminal, settings were blamed on the model file, thread counts far above the CPUs went through
silently, a long chat ended in PromptTooLongError, and tables in pipes were cut at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.cli.render import render_crash, safe_text, user_errors
from edgekit.devices.profiles import usable_cpus
from edgekit.errors import OutputStreamError

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
ESC = "\x1b"
HOSTILE_NAME = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x9b31m"


def _edited(model: Path, tmp_path: Path, **kv: str | int | float) -> Path:
    from edgekit.gguf.metadata import add_metadata

    out = tmp_path / "edited.gguf"
    add_metadata(model, out, kv)
    return out


def _edgekit(
    *args: str,
    stdout: Any = subprocess.PIPE,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """edgekit in a child process: real file descriptors, as a shell would give them."""
    cmd = [sys.executable, "-m", "edgekit", *args]
    return subprocess.run(
        cmd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=90,
        env=env,
        preexec_fn=preexec_fn,
    )


def test_a_fifo_as_the_model_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(runner.invoke(app, ["run", str(fifo), "-p", "x", "--json"])),
        daemon=True,
    )
    worker.start()
    worker.join(20)
    if worker.is_alive():  # unblock the open() so the thread can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("run blocked opening the FIFO")
    r = result[0]
    assert r.exit_code == 2  # type: ignore[attr-defined]
    assert "not a regular file" in json.loads(r.stdout)["message"]  # type: ignore[attr-defined]


def test_chat_with_stdin_closed_is_one_error(tiny_model: Path) -> None:
    r = _edgekit("run", str(tiny_model), "-n", "2", preexec_fn=lambda: os.close(0))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "standard input" in r.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_stdout_on_a_full_disk_is_one_error(tiny_model: Path, as_json: bool) -> None:
    args = ["run", str(tiny_model), "-p", "the city", "-n", "8", *(["--json"] if as_json else [])]
    with open("/dev/full", "w") as full:
        r = _edgekit(*args, stdout=full)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    assert "cannot write to standard output" in r.stderr


def test_the_json_crash_handler_survives_a_full_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @user_errors
    def crashes(as_json: bool = True) -> None:
        raise RuntimeError("a bug")

    from edgekit.cli.render import print_json

    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        with pytest.raises(OutputStreamError):
            print_json({"a": 1})
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        with pytest.raises(typer.Exit) as e:
            crashes(as_json=True)
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        render_crash(RuntimeError("again"))  # reports on stderr instead of raising
    assert e.value.exit_code == 1
    err = capsys.readouterr().err
    assert "a bug" in err and "standard output" in err


def test_names_from_files_cannot_drive_the_terminal(
    tiny_model: Path, tmp_path: Path, user_config: Path
) -> None:
    bad = _edited(tiny_model, tmp_path, **{"general.name": HOSTILE_NAME})
    r = runner.invoke(app, ["run", str(bad), "-p", "the city", "-n", "2"])
    assert r.exit_code == 0, r.output
    assert ESC not in r.stderr and "\x9b" not in r.stderr and "\u241b" in r.stderr
    r = runner.invoke(app, ["inspect", str(bad)])
    assert r.exit_code == 0 and ESC not in r.stdout and "\u241b]0;owned" in r.stdout
    profile = json.dumps(HOSTILE_NAME)  # a TOML basic string takes JSON's \u escapes
    (user_config / "evil.toml").write_text(
        f"name = {profile}\ndescription = {profile}\n[runtime]\n"
    )
    for args in (["devices", "list"], ["devices", "show", "evil"], ["inspect", str(tiny_model)]):
        r = runner.invoke(app, args)
        assert ESC not in r.output and "\x07" not in r.output, args


def test_control_characters_become_visible_pictures() -> None:
    assert safe_text("a\x1b[2Jb\tc\nd\x7f\x9b") == "a\u241b[2Jb\tc\nd\u2421\ufffd"


def test_a_generated_escape_sequence_is_not_sent_to_the_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.cli.render import write_model_text

    write_model_text("ok \x1b[2J done\n")
    assert capsys.readouterr().out == "ok \u241b[2J done\n"


def test_a_quantized_kv_cache_blames_the_setting_not_the_file(
    tiny_model: Path, tmp_path: Path, user_config: Path
) -> None:
    """llama.cpp cannot create the context; the message said "download the file again"."""
    from tests.fixtures.tiny_models import write_tiny_llama

    def run(model: Path, profile: str) -> tuple[int, dict[str, Any]]:
        (user_config / "q4kv.toml").write_text(f'[runtime]\nkv_cache_type = "q4_0"\n{profile}')
        args = ["run", str(model), "-d", "q4kv", "-p", "x", "-n", "2", "--json"]
        r = runner.invoke(app, args)
        return r.exit_code, json.loads(r.stdout)

    code, doc = run(tiny_model, "")  # a quantized V cache needs flash attention
    assert code == 2 and doc["error"] == "ProfileValueError" and "flash_attn" in doc["message"]
    code, doc = run(tiny_model, "flash_attn = true\n")  # heads of 16 in blocks of 32
    assert code == 2 and doc["error"] == "ProfileValueError" and "blocks of 32" in doc["message"]
    for d in (doc, run(tiny_model, "")[1]):
        assert "download" not in f"{d['message']} {d['hint']}"
    wide_heads = write_tiny_llama(tmp_path / "wide.gguf", n_embd=128, n_head=4, n_head_kv=2)
    code, doc = run(wide_heads, "flash_attn = true\n")  # heads of 32: it runs
    assert code == 0, doc


@pytest.mark.parametrize("ctx", ["1000000000", str(2**40)])
def test_an_impossible_context_blames_the_option(tiny_model: Path, ctx: str) -> None:
    r = runner.invoke(app, ["run", str(tiny_model), "-p", "x", "--ctx", ctx, "--json"])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["error"] == "OptionError" and "--ctx" in doc["message"]
    assert "download" not in (doc["hint"] or "")


def test_threads_above_the_cpu_count_are_clamped_with_a_note(
    tiny_model: Path, user_config: Path
) -> None:
    cpus = usable_cpus()
    args = ["run", str(tiny_model), "-p", "the city", "-n", "2", "--temp", "0", "--json"]
    r = runner.invoke(app, [*args, "-t", str(cpus * 64)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stats"]["threads"] <= cpus
    assert f"-t {cpus * 64}" in r.stderr and "note" in r.stderr
    (user_config / "many.toml").write_text("[runtime]\nthreads = 4096\n")
    r = runner.invoke(app, [*args, "-d", "many"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stats"]["threads"] <= cpus
    assert "profile many asks for 4096 threads" in r.stderr


def test_a_long_chat_drops_its_oldest_turns(tiny_model: Path) -> None:
    turns = "".join(f"turn {i}: the river city\n" for i in range(16))
    args = ["run", str(tiny_model), "--ctx", "128", "-n", "8", "--temp", "0", "--json"]
    r = runner.invoke(app, args, input=turns)
    assert r.exit_code == 0, r.output
    docs = [json.loads(chunk) for chunk in r.stdout.replace("}\n{", "}\n\n{").split("\n\n")]
    assert len(docs) == 16
    assert max(d.get("dropped_turns", 0) for d in docs) > 0
    r = runner.invoke(app, args[:-1], input=turns)
    assert r.exit_code == 0 and "dropped the" in r.stderr


def test_the_newest_message_alone_too_long_is_still_one_error(tiny_model: Path) -> None:
    args = ["run", str(tiny_model), "--ctx", "64", "-n", "4", "--json"]
    r = runner.invoke(app, args, input="the river city " * 100 + "\n")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["error"] == "PromptTooLongError"


def test_tables_in_a_pipe_are_not_cut_at_80_columns(tiny_model: Path, tmp_path: Path) -> None:
    long_name = "a-model-name-that-is-long-" * 6
    bad = _edited(tiny_model, tmp_path, **{"general.name": long_name})
    r = _edgekit("inspect", str(bad), env={**os.environ, "COLUMNS": ""})
    assert r.returncode == 0, r.stderr
    assert long_name in r.stdout
    assert "…" not in r.stdout


@pytest.mark.parametrize("args", [["inspect"], ["inspect", "--tensors"], ["model", "path"]])
def test_tables_and_text_on_a_full_disk_are_one_error(tiny_model: Path, args: list[str]) -> None:
    """rich's own write raised the OSError there, past the --json-only crash handler."""
    argv = [*args, str(tiny_model)] if args[0] == "inspect" else args
    with open("/dev/full", "w") as full:
        r = _edgekit(*argv, stdout=full)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "cannot write to standard output" in r.stderr


def test_a_reader_that_goes_away_is_not_an_error(tiny_model: Path) -> None:
    """`edgekit inspect --tensors | head -1`: a quiet exit as a killed pipe writer, no panel."""
    cmd = [sys.executable, "-m", "edgekit", "inspect", str(tiny_model), "--tensors"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.readline()
    child.stdout.close()  # the reader exits; the writer gets EPIPE on its next flush
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) in (0, 141)
    assert "Traceback" not in err and "Exception ignored" not in err and "error" not in err
