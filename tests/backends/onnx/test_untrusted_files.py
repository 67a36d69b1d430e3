"""Issue 34, item 5: an ONNX folder is downloaded data. Bad config.json values and a chat
template that is not UTF-8 or that never ends are one clear error each, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edgekit.backends.onnx.model import load_onnx_dir, plan_onnx_run
from edgekit.backends.onnx.tokenizer import OnnxTokenizer
from edgekit.cli import app
from edgekit.errors import ChatTemplateError, ModelFileError
from tests.fixtures.onnx import CONFIG, model_dir

MISSING = object()
BAD_VALUES: dict[str, tuple[str, Any]] = {
    "no hidden_size": ("hidden_size", MISSING),
    "hidden_size a string": ("hidden_size", "64"),
    "zero heads": ("num_attention_heads", 0),
    "negative layers": ("num_hidden_layers", -2),
    "float vocab": ("vocab_size", 384.5),
    "bool kv heads": ("num_key_value_heads", True),
    "heads not a multiple": ("num_key_value_heads", 3),
    "huge context": ("max_position_embeddings", 10**30),
    "model_type a list": ("model_type", ["llama"]),
    "no layers": ("num_hidden_layers", MISSING),
}


def _with(folder: Path, key: str, value: Any) -> Path:
    config = {k: v for k, v in CONFIG.items() if k != key}
    if value is not MISSING:
        config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text("{}")  # present: the config is what is checked
    return folder


@pytest.mark.parametrize(("key", "value"), list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_bad_config_values_are_named(tmp_path: Path, key: str, value: Any) -> None:
    folder = _with(model_dir(tmp_path / "m", tokenizer=False), key, value)
    with pytest.raises(ModelFileError, match=key):
        load_onnx_dir(folder)
    with pytest.raises(ModelFileError, match=key):
        plan_onnx_run(folder, "cpu")


@pytest.mark.parametrize(("key", "value"), list(BAD_VALUES.values())[:4], ids=list(BAD_VALUES)[:4])
def test_bad_config_through_the_cli_is_one_json_error(tmp_path: Path, key: str, value: Any) -> None:
    folder = _with(model_dir(tmp_path / "m", tokenizer=False), key, value)
    r = CliRunner().invoke(app, ["run", str(folder), "-p", "x", "--json"])
    assert r.exit_code == 2, r.output
    assert json.loads(r.stdout)["error"] == "ModelFileError"


@pytest.mark.parametrize("content", [b"{{ messages \xff\xfe }}", b"\x80abc"])
def test_a_chat_template_that_is_not_utf8(tmp_path: Path, content: bytes) -> None:
    folder = model_dir(tmp_path / "m")
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    (folder / "chat_template.jinja").write_bytes(content)
    tok = OnnxTokenizer(load_onnx_dir(folder))
    with pytest.raises(ModelFileError, match="chat template"):
        tok.format_chat([{"role": "user", "content": "hi"}])


def test_a_chat_template_that_never_ends_is_stopped(tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "m")
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": loop}))
    tok = OnnxTokenizer(load_onnx_dir(folder))
    with pytest.raises(ChatTemplateError, match="time limit"):
        tok.format_chat([{"role": "user", "content": "hi"}])
