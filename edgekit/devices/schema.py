"""The one schema of device profile files: every table, key, type and range in one place.

A profile is a hand-edited TOML file, so the mistakes it must catch are a person's: a misspelt key
(`gpu_layer = 5` would silently run with no GPU layers), a quoted boolean (`mmap = "false"` is a
true string), a float where an integer belongs, a value llama.cpp does not take. Each is an error
naming the file, the key and, for an unknown key, the nearest valid one. The README's "Device
profiles" section documents the same keys.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, LlamaFileType

from edgekit.devices.builds import VARIANTS
from edgekit.errors import ProfileKeyError, ProfileSyntaxError, ProfileValueError

MAX_PROFILE_BYTES = 1 << 20
# The KV cache types llama.cpp accepts (common/arg.cpp, kv_cache_types), by ggml type.
KV_CACHE_TYPES = tuple(
    t.name
    for t in (
        GGMLQuantizationType.F32,
        GGMLQuantizationType.F16,
        GGMLQuantizationType.BF16,
        GGMLQuantizationType.Q8_0,
        GGMLQuantizationType.Q4_0,
        GGMLQuantizationType.Q4_1,
        GGMLQuantizationType.IQ4_NL,
        GGMLQuantizationType.Q5_0,
        GGMLQuantizationType.Q5_1,
    )
)
BACKENDS = ("llama.cpp", "onnxruntime")


class _Invalid(Exception):
    """A value's problem, in words; check_profile adds the file and the key."""


Check = Callable[[Any], None]


@dataclass(frozen=True)
class Key:
    check: Check
    doc: str


def _integer(lo: int, hi: int, auto: tuple[str, ...] = ()) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, str) and value in auto:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            allowed = " or ".join([f'"{a}"' for a in auto] + ["an integer"])
            raise _Invalid(f"must be {allowed}, not {_show(value)}")
        if not lo <= value <= hi:
            raise _Invalid(f"must be between {lo:,} and {hi:,}, not {value:,}")

    return check


def _boolean(value: Any) -> None:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false (no quotes), not {_show(value)}")


def _text(value: Any) -> None:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {_show(value)}")


def _choice(*options: str, fold_case: bool = False) -> Check:
    def check(value: Any) -> None:
        name = value.upper() if fold_case and isinstance(value, str) else value
        if name not in options:
            raise _Invalid(f"must be one of {', '.join(options)}, not {_show(value)}")

    return check


def _fraction(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"must be a number, not {_show(value)}")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise _Invalid(f"must be more than 0 and at most 1, not {value}")


def _list_of(item: Check) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, list):
            raise _Invalid(f"must be a list, e.g. [{_show(value)}], not {_show(value)}")
        for v in value:
            item(v)

    return check


def _weight_type(value: Any) -> None:
    _text(value)
    name = value.upper()
    if name not in GGMLQuantizationType.__members__ and (
        f"MOSTLY_{name}" not in LlamaFileType.__members__
    ):
        raise _Invalid(f"{value!r} is not a GGUF weight type (e.g. Q4_K_M, Q8_0, F16)")


def _endpoint(value: Any) -> None:
    """A "host:port" of an rpc-server; IPv6 hosts in brackets ("[::1]:50052")."""
    _text(value)
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    ok_port = port.isdigit() and 0 < int(port) < 65536
    if not (sep and host and ok_port) or any(c.isspace() for c in host):
        raise _Invalid(f'{value!r} is not "host:port" (e.g. "192.168.1.20:50052")')


def _published_speed(value: Any) -> None:
    """One published measurement: text fields and a positive decode speed, with its source."""
    if not isinstance(value, dict):
        raise _Invalid(
            f"must be a table {{model, board, decode_tok_s, source}}, not {_show(value)}"
        )
    missing = {"model", "board", "decode_tok_s", "source"} - value.keys()
    if missing:
        raise _Invalid(f"lacks {', '.join(sorted(missing))}")
    for key in ("model", "board", "source"):
        _text(value[key])
    speed = value["decode_tok_s"]
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not speed > 0:
        raise _Invalid(f"decode_tok_s must be a positive number, not {_show(speed)}")


SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "name": Key(_text, "the name shown in listings (default: the file name)"),
        "description": Key(_text, "one line about the device"),
    },
    "runtime": {
        "backend": Key(_choice(*BACKENDS), "the runtime the profile is tuned for"),
        "threads": Key(_integer(1, 4096, auto=("auto",)), '"auto" (physical cores) or a count'),
        "gpu_layers": Key(_integer(-1, 1 << 16), "layers to offload; -1 offloads all"),
        "context": Key(_integer(1, 1 << 24), "context size in tokens"),
        "batch": Key(_integer(1, 1 << 20), "logical batch (prompt tokens per decode call)"),
        "ubatch": Key(_integer(1, 1 << 20), "physical micro-batch (default: batch)"),
        "mmap": Key(_boolean, "map the weights instead of reading them"),
        "mlock": Key(_boolean, "lock the weights in RAM"),
        "flash_attn": Key(_boolean, "flash attention"),
        "swa_full": Key(_boolean, "full-size KV cache for sliding-window layers"),
        "kv_cache_type": Key(
            _choice(*KV_CACHE_TYPES, fold_case=True), "KV cache type: " + ", ".join(KV_CACHE_TYPES)
        ),
        "onnx_providers": Key(_list_of(_text), "onnxruntime execution providers, in order"),
        "rpc": Key(_list_of(_endpoint), 'llama.cpp rpc-server workers, ["host:port", ...]'),
    },
    "memory": {
        "budget_mb": Key(
            _integer(1, 1 << 30, auto=("auto", "auto-gpu")),
            '"auto" (a share of available RAM), "auto-gpu" (of GPU memory) or MiB',
        ),
        "budget_fraction": Key(_fraction, "the share used by the auto budgets, in (0, 1]"),
        "fallback_mb": Key(_integer(1, 1 << 30), "auto-gpu's budget when no GPU is found"),
        "kind": Key(_choice("ram", "gpu"), "which memory the budget counts"),
    },
    "weights": {"recommended": Key(_list_of(_weight_type), "weight types that run well")},
    "build": {
        "variant": Key(
            _choice(*VARIANTS), "llama.cpp build variant for this device: " + ", ".join(VARIANTS)
        ),
        "cmake_args": Key(_text, "CMake flags that replace the variant's own"),
        "cross_cmake_args": Key(_text, "what native means on this device, to cross-compile for it"),
        "notes": Key(_text, "build notes"),
    },
    "speed": {
        "published": Key(
            _list_of(_published_speed), "published speeds on this device, with sources"
        )
    },
}
REQUIRED_TABLES = ("runtime",)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return repr(value[:40])
    return f"{type(value).__name__} {value!r}"


def read_profile_toml(path: Path) -> dict[str, Any]:
    """The parsed document, or ProfileSyntaxError for anything that is not small UTF-8 TOML."""
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ProfileSyntaxError(
                f"device profile {path} is {size:,} bytes; a profile is a few hundred",
                hint="Point it at a real profile: `edgekit devices show cpu` shows one.",
            )
        data = path.read_bytes()
    except OSError as e:
        raise ProfileSyntaxError(f"cannot read device profile {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProfileSyntaxError(
            f"device profile {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
            f"{e.start})",
            hint="Save it as UTF-8.",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileSyntaxError(f"device profile {path} is not valid TOML: {e}") from None
    except RecursionError:
        raise ProfileSyntaxError(f"device profile {path} is nested too deeply") from None


def check_profile(raw: dict[str, Any], path: Path) -> None:
    """Raise ProfileKeyError / ProfileValueError for the first thing the schema does not allow."""
    for table in REQUIRED_TABLES:
        if table not in raw:
            raise ProfileKeyError(
                f"device profile {path} has no [{table}] table",
                hint=f"Add [{table}]; its keys: {', '.join(SCHEMA[table])}.",
            )
    for key, value in raw.items():
        if key in SCHEMA and key:
            if not isinstance(value, dict):
                raise ProfileValueError(
                    f"device profile {path}: [{key}] must be a table, not {_show(value)}",
                    hint=f"Write it as a [{key}] section with keys: {', '.join(SCHEMA[key])}.",
                )
            for sub, sub_value in value.items():
                _check_key(path, key, sub, sub_value)
        else:
            _check_key(path, "", key, value)
    _check_kv_cache(path, raw.get("runtime") or {})


# llama.cpp quantizes the V cache only inside flash attention: with it off, the context cannot
# be created, and the load failure would read like a damaged model file.
_FLOAT_KV = ("F32", "F16", "BF16")


def _check_kv_cache(path: Path, runtime: dict[str, Any]) -> None:
    kv = str(runtime.get("kv_cache_type", "F16")).upper()
    if kv not in _FLOAT_KV and not runtime.get("flash_attn", False):
        raise ProfileValueError(
            f'device profile {path}: [runtime] kv_cache_type = "{kv.lower()}" needs '
            "flash_attn = true (llama.cpp quantizes the V cache only with flash attention)",
            hint='Add flash_attn = true to [runtime], or use kv_cache_type = "f16".',
        )


def _check_key(path: Path, table: str, key: str, value: Any) -> None:
    keys = SCHEMA[table]
    where = f"[{table}] " if table else ""
    if key not in keys:
        tables = ", ".join(f"[{t}]" for t in SCHEMA if t)
        valid = f"in [{table}]: {', '.join(keys)}" if table else "at the top: name, description; "
        valid += "" if table else f"tables: {tables}"
        raise ProfileKeyError(
            f"device profile {path}: unknown key {where}{key!r}{_suggest(table, key)}",
            hint=f"Valid keys {valid}.",
        )
    try:
        keys[key].check(value)
    except _Invalid as e:
        raise ProfileValueError(
            f"device profile {path}: {where}{key} {e}", hint=f"{key}: {keys[key].doc}."
        ) from None


def _suggest(table: str, key: str) -> str:
    """'; did you mean ...?' from the same table, else where the key really belongs."""
    candidates = list(SCHEMA[table]) + ([t for t in SCHEMA if t] if not table else [])
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    for other, keys in SCHEMA.items():
        if other != table and key in keys:
            return f"; it belongs in [{other}]" if other else "; it belongs at the top"
    return ""
