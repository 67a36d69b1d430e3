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
from edgekit.hf_config import ConfigReader

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
    except (OSError, ValueError, RecursionError) as e:  # unreadable, not UTF-8, not JSON
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
    if not config:
        raise ModelFileError(
            f"no usable config.json in {folder}",
            hint="Keep the config.json the export wrote beside model.onnx.",
        )
    read_hparams(config, folder / "config.json")  # a bad value is named here, before loading
    return OnnxModelDir(
        folder=folder,
        onnx_file=onnx_file,
        config=config,
        tokenizer_config=_json(folder / "tokenizer_config.json"),
        generation_config=_json(folder / "generation_config.json"),
        plan=_json(folder / PLAN_FILE),
    )


@dataclass(frozen=True)
class OnnxHParams:
    """The config.json values the estimate and the banner need, checked."""

    model_type: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    tied: bool

    @property
    def n_params(self) -> int:
        h, hd = self.n_embd, self.head_dim
        per_layer = h * hd * (2 * self.n_head + 2 * self.n_head_kv) + 3 * h * self.n_ff
        heads = 1 if self.tied else 2
        return heads * self.n_vocab * h + self.n_layer * per_layer


def read_hparams(config: dict[str, Any], path: Path) -> OnnxHParams:
    """Each value typed and in range, or a ModelFileError naming the key (a string, a missing
    hidden_size or zero heads would otherwise surface as a traceback from the estimate)."""
    r = ConfigReader(config, path, ModelFileError)
    n_embd, n_head = r.integer("hidden_size"), r.integer("num_attention_heads", default=1)
    n_head_kv = r.integer("num_key_value_heads", default=n_head)
    if n_head % n_head_kv:
        raise ModelFileError(
            f"{path}: num_attention_heads ({n_head}) is not a multiple of "
            f"num_key_value_heads ({n_head_kv})",
            hint="The model's config.json is damaged: re-export the model.",
        )
    return OnnxHParams(
        model_type=r.text("model_type", "unknown"),
        n_layer=r.integer("num_hidden_layers"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=r.integer("head_dim", default=max(1, n_embd // n_head)),
        n_ff=r.integer("intermediate_size", default=4 * n_embd),
        n_vocab=r.integer("vocab_size"),
        n_ctx_train=r.integer("max_position_embeddings", default=2048),
        tied=r.flag("tie_word_embeddings"),
    )


def onnx_model_info(d: OnnxModelDir) -> ModelInfo:
    """The GGUF-shaped summary the memory estimate and the run banner read."""
    hp = read_hparams(d.config, d.folder / "config.json")
    size = d.file_size
    return ModelInfo(
        path=d.folder,
        architecture=hp.model_type,
        name=d.folder.name,
        block_count=hp.n_layer,
        n_embd=hp.n_embd,
        feed_forward_length=hp.n_ff,
        n_head=hp.n_head,
        n_head_kv=hp.n_head_kv,
        head_dim_k=hp.head_dim,
        head_dim_v=hp.head_dim,
        context_length=hp.n_ctx_train,
        # The exported graph keeps every position's K/V, windowed layers included.
        sliding_window=0,
        vocab_size=hp.n_vocab,
        file_type=f"ONNX {d.precision}",
        file_size=size,
        tensor_bytes=size,
        n_params=hp.n_params,
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
