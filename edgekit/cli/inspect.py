"""`edgekit inspect`: what a model file holds and where it fits, read without loading it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from edgekit.cli.options import JsonOpt
from edgekit.cli.render import err_console, kv_table, mib, out_console, print_json, user_errors

if TYPE_CHECKING:
    from edgekit.gguf.reader import ModelInfo


@user_errors
def inspect_command(
    model: Annotated[
        str | None, typer.Argument(help="A .gguf file; the default model if omitted.")
    ] = None,
    tensors: Annotated[bool, typer.Option("--tensors", help="List every tensor.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Architecture, tensor types, bits per weight, metadata and memory per device profile."""
    from edgekit.backends.runner import resolve_model
    from edgekit.devices.memory import estimate_memory
    from edgekit.devices.profiles import scan_profiles
    from edgekit.gguf.reader import model_info as to_info
    from edgekit.gguf.reader import read_header

    header = read_header(resolve_model(model))
    info = to_info(header)
    entries = scan_profiles()
    # A broken profile of the user's only costs its own row, never the whole command.
    broken = {e.name: e.error for e in entries if e.error is not None}
    estimates = {e.name: estimate_memory(info, e.profile) for e in entries if e.profile}
    if as_json:
        print_json(
            {
                **_summary(info),
                "metadata": {k: _jsonable(v) for k, v in header.metadata.items()},
                "types": {k: {"tensors": c, "bytes": b} for k, (c, b) in info.types.items()},
                "tensors": [_tensor_row(t) for t in info.tensors] if tensors else None,
                "memory": {name: e.to_dict() for name, e in estimates.items()},
                "broken_profiles": {name: e.to_dict() for name, e in broken.items()},
            }
        )
        return
    _print_summary(info)
    _print_types(info)
    _print_metadata(header.metadata)
    if tensors:
        _print_tensors(info)
    _print_memory(estimates)
    for name, error in broken.items():
        err_console.print(f"note: device profile {name} is broken: {error.message}", markup=False)


def _summary(info: ModelInfo) -> dict[str, Any]:
    return {
        "path": str(info.path),
        "name": info.name,
        "architecture": info.architecture,
        "blocks": info.block_count,
        "n_embd": info.n_embd,
        "heads": info.n_head,
        "kv_heads": info.n_head_kv,
        "context_length": info.context_length,
        "vocab_size": info.vocab_size,
        "file_type": info.file_type,
        "file_size": info.file_size,
        "parameters": info.n_params,
        "bits_per_weight": round(info.bits_per_weight, 3),
        "chat_template": info.has_chat_template,
    }


def _jsonable(value: Any) -> Any:
    from edgekit.gguf.reader import SkippedArray

    if isinstance(value, SkippedArray):
        return f"[{value.length} x {value.item_type.name}]"
    if isinstance(value, list):  # per-layer arrays are kept; long ones are summarised
        return f"[{len(value)} values]" if len(value) > 64 else [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN
    return value


def _tensor_row(t: Any) -> dict[str, Any]:
    return {"name": t.name, "shape": list(t.shape), "type": t.ggml_type.name, "bytes": t.n_bytes}


def _print_summary(info: ModelInfo) -> None:
    s = _summary(info)
    s["file_size"] = mib(info.file_size)
    s["parameters"] = f"{info.n_params / 1e6:,.1f} M"
    out_console.print(kv_table("Model", s))


def _print_types(info: ModelInfo) -> None:
    table = Table(title="Tensor types", title_justify="left")
    for col in ("type", "tensors", "size", "share"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for name, (count, size) in info.types.items():
        share = size / info.tensor_bytes if info.tensor_bytes else 0.0
        table.add_row(name, str(count), mib(size), f"{share:.1%}")
    out_console.print(table)


def _print_metadata(metadata: dict[str, Any]) -> None:
    out_console.print(kv_table("Metadata", {k: _jsonable(v) for k, v in metadata.items()}))


def _print_tensors(info: ModelInfo) -> None:
    table = Table(title="Tensors", title_justify="left")
    for col in ("name", "shape", "type", "size"):
        table.add_column(col)
    for t in info.tensors:
        # Text, not markup: tensor names come from the file.
        table.add_row(Text(t.name), "x".join(map(str, t.shape)), t.ggml_type.name, mib(t.n_bytes))
    out_console.print(table)


def _print_memory(estimates: dict[str, Any]) -> None:
    table = Table(title="Memory estimate per device profile", title_justify="left")
    for col in ("device", "context", "weights", "KV cache", "compute", "total", "budget", "fits"):
        table.add_column(col, justify="left" if col == "device" else "right")
    for name, e in estimates.items():
        table.add_row(
            Text(name),
            str(e.context),
            mib(e.weights + e.repacked),
            mib(e.kv_cache),
            mib(e.compute),
            mib(e.against_budget),
            mib(e.budget),
            "[green]yes[/green]" if e.fits else "[red]no[/red]",
        )
    out_console.print(table)
