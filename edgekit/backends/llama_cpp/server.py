"""llama.cpp's own llama-server, launched from a run plan: its command line and its process.

The flags come from the device profile the way `run` applies it (threads, GPU layers, batch sizes,
KV cache type, flash attention), and the rest are pinned so that what runs is what edgekit's
memory check counted:
- `-c` is the TOTAL context, split evenly over the `-np` slots (llama-context.cpp: n_ctx_seq =
  pad(n_ctx / n_seq_max, 256) without --kv-unified), so edgekit passes slots x per-slot context;
- `--fit off`: llama-server otherwise shrinks unset context and offload to free memory by itself;
- `--cache-ram 0`: the host-memory prompt cache (8 GiB by default) is more than a Pi has, and
  the estimate does not count it (tests/serving/test_slot_memory.py checks the estimate against
  what llama-server reports allocating);
- `--no-kv-unified`, `-np N`: fixed slots, each with its own KV stream, as the estimate assumes.
The server listens on loopback with a random key of its own; edgekit's front is the public side.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgekit.backends.base import RunPlan
from edgekit.backends.llama_cpp.build import tool_path
from edgekit.backends.llama_cpp.chat_format import builtin_chat_format
from edgekit.errors import RuntimeBackendError
from edgekit.gguf.reader import read_header

KV_CELLS_PAD = 256  # llama.cpp pads each slot's context to whole 256-cell blocks
_PR_SET_PDEATHSIG = 1


def slot_context(n_ctx: int) -> int:
    """The context each slot really gets for a requested per-slot context."""
    return -(-n_ctx // KV_CELLS_PAD) * KV_CELLS_PAD


@dataclass(frozen=True)
class Offload:
    """RPC workers and how llama.cpp spreads layers over them (rpc/pool.py decides)."""

    endpoints: tuple[str, ...]
    n_gpu_layers: int
    tensor_split: tuple[float, ...]


@dataclass(frozen=True)
class ServerConfig:
    plan: RunPlan
    slots: int
    port: int
    api_key: str
    host: str = "127.0.0.1"
    offload: Offload | None = None
    extra_args: tuple[str, ...] = ()  # e.g. the bias guard's --lora


def _gpu_layers(n: int) -> str:
    return "all" if n < 0 else str(n)  # profiles say -1 for all; llama-server's -1 means "auto"


def _load_mode(mmap: bool, mlock: bool) -> str:
    if mmap:
        return "mmap+mlock" if mlock else "mmap"
    return "mlock" if mlock else "none"


def chat_format_of(plan: RunPlan) -> str:
    template = read_header(plan.info.path).metadata.get("tokenizer.chat_template")
    return builtin_chat_format(
        template if isinstance(template, str) else None, plan.info.architecture
    )


def server_argv(config: ServerConfig, binary: Path | None = None) -> list[str]:
    """The llama-server command line for a plan; the benchmark runs bare llama-server with it."""
    plan, profile = config.plan, config.plan.profile
    threads = plan.threads or profile.threads
    per_slot = slot_context(plan.n_ctx)
    argv = [
        str(binary or tool_path("llama-server")),
        "--model", str(plan.info.path),
        "--host", config.host,
        "--port", str(config.port),
        "--api-key", config.api_key,
        "--threads", str(threads),
        "--threads-batch", str(threads),
        "--ctx-size", str(per_slot * config.slots),
        "--parallel", str(config.slots),
        "--no-kv-unified",
        "--batch-size", str(profile.batch),
        "--ubatch-size", str(profile.ubatch),
        "--cache-type-k", profile.kv_cache_type.name.lower(),
        "--cache-type-v", profile.kv_cache_type.name.lower(),
        "--flash-attn", "on" if profile.flash_attn else "off",
        "--load-mode", _load_mode(profile.mmap, profile.mlock),
        "--fit", "off",
        "--cache-ram", "0",
        "--no-cache-idle-slots",  # needs the RAM cache; llama-server would warn and drop it
        "--metrics",
        "--slots",
        "--no-webui",
    ]  # fmt: skip
    if profile.swa_full:
        argv.append("--swa-full")
    # The file's template never runs: see chat_format.py.
    argv += ["--no-jinja", "--chat-template", chat_format_of(plan)]
    if config.offload is not None:
        argv += ["--rpc", ",".join(config.offload.endpoints)]
        argv += ["--gpu-layers", str(config.offload.n_gpu_layers)]
        argv += ["--tensor-split", ",".join(f"{f:g}" for f in config.offload.tensor_split)]
    else:
        argv += ["--gpu-layers", _gpu_layers(profile.gpu_layers)]
    return [*argv, *config.extra_args]


def _die_with_parent() -> None:
    # Runs in the child before exec: if edgekit is killed outright, the kernel stops the server
    # too, so no llama-server outlives the command that started it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ServerProcess:
    """One llama-server child: its log goes to a file (or the terminal with verbose)."""

    def __init__(self, argv: Sequence[str], log_path: Path, verbose: bool = False) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        out: int | IO[bytes] | None = None
        if not verbose:
            self._log = log_path.open("wb")
            out = self._log
        env = {**os.environ, "LC_ALL": "C"}
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            env=env,
            # Its own process group: the terminal's Ctrl-C reaches edgekit only, which then stops
            # the server in order (front first, so no client is cut off mid-write by surprise).
            start_new_session=True,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, lines: int = 12) -> list[str]:
        try:
            with self.log_path.open("rb") as f:
                tail = deque(f, maxlen=lines)
        except OSError:
            return []
        return [b.decode("utf-8", "replace").rstrip() for b in tail]

    def died_error(self, doing: str) -> RuntimeBackendError:
        code = self.proc.poll()
        tail = "\n".join(self.log_tail())
        how = f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"
        return RuntimeBackendError(
            f"llama-server stopped {doing} ({how}); the end of its log:\n{tail}",
            hint=f"Its whole log is in {self.log_path}.",
        )

    def wait_healthy(self, url: str, timeout: float) -> None:
        """Wait until /health answers 200 (the model is loaded); raise with the log if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.died_error("while loading the model")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet, or 503 while loading
            time.sleep(0.1)
        self.stop()
        raise RuntimeBackendError(
            f"llama-server did not become ready within {timeout:.0f} s",
            hint=f"Its log is in {self.log_path}.",
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; always reaps the child."""
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
