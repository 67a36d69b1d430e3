"""An ONNX model directory (as `edgekit convert --to onnx` writes it), read without onnxruntime.

The folder holds model.onnx (+ model.onnx_data for big models), config.json, tokenizer.json with
its tokenizer_config.json, and plan.json. This module only reads those files, so `edgekit run` can
recognise an ONNX model, estimate its memory and refuse it before any heavy import.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gguf import GGMLQuantizationType

from edgekit.errors import ModelFileError, ModelNotFoundError
from edgekit.gguf.reader import ModelInfo

if TYPE_CHECKING:
    from edgekit.backends.base import RunPlan

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
PLAN_FILE = "plan.json"
# Files the runtime reads beside the graph; the exporter and the quantizer copy exactly these.
SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "genai_config.json",
)


def is_onnx_model(path: str | Path) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / ONNX_FILE).is_file()) or (p.is_file() and p.suffix == ".onnx")


@dataclass(frozen=True)
class OnnxModelDir:
    folder: Path
    onnx_file: Path
    config: dict[str, Any]
    tokenizer_config: dict[str, Any]
    generation_config: dict[str, Any]
    plan: dict[str, Any]

    @property
    def file_size(self) -> int:
        """The graph and every external-data file beside it: optimum writes `model.onnx_data`,
        onnxruntime-genai's builder and edgekit's int4 writer `model.onnx.data`."""
        files = [f for f in self.folder.iterdir() if f.name.startswith(self.onnx_file.name)]
        return sum(f.stat().st_size for f in files if f.is_file())

    @property
    def precision(self) -> str:
        return str(self.plan.get("precision", "fp32" if not self.plan else "unknown"))


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is not valid JSON: {e}") from None
    return data if isinstance(data, dict) else {}


def load_onnx_dir(path: str | Path) -> OnnxModelDir:
    """Check the folder has what running needs; one clear error for what is missing."""
    p = Path(path).expanduser()
    folder, onnx_file = (p.parent, p) if p.suffix == ".onnx" else (p, p / ONNX_FILE)
    if not onnx_file.is_file():
        raise ModelNotFoundError(
            f"no ONNX model at {onnx_file}",
            hint="Give a folder written by `edgekit convert MODEL --to onnx`.",
        )
    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelFileError(
            f"no {TOKENIZER_FILE} beside {onnx_file.name} in {folder}",
            hint="edgekit's ONNX runtime tokenizes with tokenizer.json (a fast tokenizer); "
            "save it there with tokenizer.save_pretrained(folder).",
        )
    config = _json(folder / "config.json")
    if not config.get("num_hidden_layers"):
        raise ModelFileError(
            f"no usable config.json in {folder}",
            hint="Keep the config.json the export wrote beside model.onnx.",
        )
    return OnnxModelDir(
        folder=folder,
        onnx_file=onnx_file,
        config=config,
        tokenizer_config=_json(folder / "tokenizer_config.json"),
        generation_config=_json(folder / "generation_config.json"),
        plan=_json(folder / PLAN_FILE),
    )


def _n_params(c: dict[str, Any]) -> int:
    h, n_layers, vocab = int(c["hidden_size"]), int(c["num_hidden_layers"]), int(c["vocab_size"])
    n_head = int(c.get("num_attention_heads", 1))
    n_kv = int(c.get("num_key_value_heads") or n_head)
    hd = int(c.get("head_dim") or h // n_head)
    ff = int(c.get("intermediate_size", 4 * h))
    per_layer = h * hd * (2 * n_head + 2 * n_kv) + 3 * h * ff
    heads = 1 if c.get("tie_word_embeddings") else 2
    return heads * vocab * h + n_layers * per_layer


def onnx_model_info(d: OnnxModelDir) -> ModelInfo:
    """The GGUF-shaped summary the memory estimate and the run banner read."""
    c = d.config
    n_head = int(c.get("num_attention_heads", 1))
    head_dim = int(c.get("head_dim") or int(c["hidden_size"]) // n_head)
    size = d.file_size
    return ModelInfo(
        path=d.folder,
        architecture=str(c.get("model_type", "unknown")),
        name=d.folder.name,
        block_count=int(c["num_hidden_layers"]),
        n_embd=int(c["hidden_size"]),
        feed_forward_length=int(c.get("intermediate_size", 0)),
        n_head=n_head,
        n_head_kv=int(c.get("num_key_value_heads") or n_head),
        head_dim_k=head_dim,
        head_dim_v=head_dim,
        context_length=int(c.get("max_position_embeddings", 2048)),
        # The exported graph keeps every position's K/V, windowed layers included.
        sliding_window=0,
        vocab_size=int(c["vocab_size"]),
        file_type=f"ONNX {d.precision}",
        file_size=size,
        tensor_bytes=size,
        n_params=_n_params(c),
        types={},
        has_chat_template=bool(d.tokenizer_config.get("chat_template"))
        or (d.folder / "chat_template.jinja").is_file(),
    )


def plan_onnx_run(model: str | Path, device: str, n_ctx: int | None = None) -> RunPlan:
    """`runner.plan_run` for an ONNX folder: the same fit check, with a fp32 KV cache."""
    from edgekit.backends.base import RunPlan
    from edgekit.devices.memory import check_fit, estimate_memory
    from edgekit.devices.profiles import load_profile

    profile = load_profile(device)
    info = onnx_model_info(load_onnx_dir(model))
    ctx = n_ctx or min(profile.context, info.context_length)
    kv_profile = dataclasses.replace(profile, kv_cache_type=GGMLQuantizationType.F32)
    estimate = estimate_memory(info, kv_profile, ctx)
    check_fit(estimate, info, profile)
    return RunPlan(info, profile, ctx, estimate, backend="onnx")
