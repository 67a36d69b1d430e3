"""llama.cpp's own tools, driven as subprocesses: llama-quantize, llama-imatrix, llama-perplexity.

The tools are built from the same source and flags as the Python wheel (see build.py), so a file
written here is what llama-cpp-python will read. Only this module spawns them: the core asks for
stock mixes, importance matrices, quantized files and reference KL divergences through it.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp.build import tool_path
from edgekit.errors import ConversionError, EvalError

Q = GGMLQuantizationType
LineHook = Callable[[str], None]

# One line per tensor in llama-quantize's log, real run or --dry-run:
# "[  12/ 236]   blk.0.attn_k.weight - [  640,   256, 1, 1], type =    f32, size = ... (q4_K)"
# An unchanged tensor ends in "size = X MiB" with no target; its type is the current one.
_TENSOR_LINE = re.compile(
    r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)\s+-\s+\[[^\]]*\],\s+type\s+=\s+(\w+),(.*)$"
)
_DRY_TARGET = re.compile(r"->\s+[\d.]+\s+MiB\s+\((\w+)\)")
_REAL_TARGET = re.compile(r"converting to (\w+)")


class ToolError(ConversionError):
    """One of llama.cpp's tools failed; the message carries the end of its log."""


def _type_of(name: str) -> GGMLQuantizationType:
    try:
        return GGMLQuantizationType[name.upper()]
    except KeyError:
        raise ToolError(f"llama.cpp reported an unknown tensor type {name!r}") from None


def run_tool(
    name: str,
    args: Sequence[str],
    on_line: LineHook | None = None,
    threads: int | None = None,
    separate_streams: bool = False,
) -> list[str]:
    """Run one tool to completion and return its log lines: stdout and stderr merged, or with
    `separate_streams` all of stdout, then all of stderr (a block-buffered stdout merged with an
    unbuffered stderr can split a result line in two; kept apart, a result line is whole on
    whichever stream llama.cpp's logger sent it).

    Ctrl-C kills the tool before the KeyboardInterrupt goes on, so no orphan keeps writing.
    """
    cmd = [str(tool_path(name)), *args]
    if threads is not None:
        cmd += ["-t", str(threads)] if name != "llama-quantize" else [str(threads)]
    env = {**os.environ, "LC_ALL": "C"}
    lines: list[str] = []
    with (
        tempfile.TemporaryFile("w+") as err,
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err if separate_streams else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if on_line is not None:
                    on_line(lines[-1])
            code = proc.wait()
        except BaseException:
            proc.kill()
            raise
        err.seek(0)
        errors = err.read().splitlines()
    lines += errors
    if code != 0:
        tail = " | ".join(s for s in lines[-6:] if s.strip())
        raise ToolError(f"{name} failed (exit {code}): {tail[-600:]}", hint=_hint(lines))
    return lines


def _hint(lines: Sequence[str]) -> str:
    log = "\n".join(lines[-40:]).lower()
    if "no space left" in log or "iostream error" in log:
        return "The disk may be full: free some space or write the output elsewhere."
    return "Run the same command by hand to see llama.cpp's whole log."


@dataclass(frozen=True)
class QuantizeRequest:
    """One llama-quantize run. `types` pins tensors (anchored names); the rest follow `ftype`."""

    base: Path
    out: Path
    ftype: str  # a llama-quantize type name: Q4_K_M, IQ4_XS, Q8_0 ...
    types: Mapping[str, GGMLQuantizationType] | None = None
    imatrix: Path | None = None
    pure: bool = False
    dry_run: bool = False
    threads: int = 2


def _type_file(req: QuantizeRequest) -> Path | None:
    # A scratch file of its own (mkstemp), never a name beside the output that a user's file
    # could already have: it is deleted when llama-quantize is done.
    if not req.types:
        return None
    fd, name = tempfile.mkstemp(prefix="edgekit-", suffix=".types.txt")
    body = "\n".join(f"^{re.escape(n)}$={t.name.lower()}" for n, t in req.types.items())
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body + "\n")
    return Path(name)


def quantize(
    req: QuantizeRequest, progress: Callable[[int, int, str], None] | None = None
) -> dict[str, GGMLQuantizationType]:
    """Run llama-quantize; return every tensor's type as the tool reports it."""
    types: dict[str, GGMLQuantizationType] = {}
    current: list[str] = []
    target_re = _DRY_TARGET if req.dry_run else _REAL_TARGET

    def on_line(line: str) -> None:
        # A tensor's "converting to X" can come lines after its own line (llama.cpp logs
        # imatrix warnings in between); a tensor with none keeps its current type.
        m = _TENSOR_LINE.search(line)
        if m:
            current[:] = [m[3]]
            types[m[3]] = _type_of(m[4])
            line = m[5]
            if progress is not None:
                progress(int(m[1]), int(m[2]), m[3])
        target = target_re.search(line)
        if target and current:
            types[current[0]] = _type_of(target[1])

    args = ["--allow-requantize"]
    if req.pure:
        args.append("--pure")
    if req.dry_run:
        args.append("--dry-run")
    if req.imatrix is not None:
        args += ["--imatrix", str(req.imatrix)]
    type_file = _type_file(req)
    if type_file is not None:
        args += ["--tensor-type-file", str(type_file)]
    args += [str(req.base)] + ([] if req.dry_run else [str(req.out)]) + [req.ftype]
    try:
        run_tool("llama-quantize", args, on_line, threads=req.threads)
    finally:
        if type_file is not None:
            type_file.unlink(missing_ok=True)
    return types


def stock_types(
    base: Path, ftype: str, threads: int = 2, imatrix: Path | None = None, pure: bool = False
) -> dict[str, GGMLQuantizationType]:
    """The types llama.cpp's own mix `ftype` (with `pure`: ftype's type wherever llama.cpp
    quantizes) gives each tensor of `base` (a dry run: no file)."""
    req = QuantizeRequest(base, base, ftype, imatrix=imatrix, pure=pure, dry_run=True)
    return quantize(replace(req, threads=threads))


def imatrix(
    model: Path, text_file: Path, out: Path, n_ctx: int = 256, chunks: int = 64, threads: int = 2
) -> Path:
    """llama-imatrix over `text_file`, saved in its GGUF format (what llama-quantize reads)."""
    args = ["-m", str(model), "-f", str(text_file), "-o", str(out), "-c", str(n_ctx)]
    args += ["--chunks", str(chunks), "--no-ppl", "--output-format", "gguf", "-ngl", "0"]
    run_tool("llama-imatrix", args, threads=threads)
    if not out.is_file():
        raise ToolError(f"llama-imatrix wrote no file at {out}")
    return out


@dataclass(frozen=True)
class KldResult:
    """llama-perplexity's --kl-divergence summary."""

    kld: float
    top1: float  # "Same top p", as a fraction
    ppl: float  # PPL of the candidate on the scored halves of the chunks
    n_chunks: int


_NUM = r"(-?[\d.]+)\s*±\s*[\d.]+"
_KLD_ATTEMPTS = 3


def _chunk_row(n: int) -> re.Pattern[str]:
    """llama-perplexity's running row after chunk n: PPL, ln(PPL(Q)/PPL(base)), KLD, dp RMS %,
    same top p %, each with its uncertainty; matched whole (up to the last '%')."""
    return re.compile(rf"^\s*{n}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s*%\s+{_NUM}\s*%", re.M)


def kl_divergence(
    reference: Path,
    candidate: Path,
    text_file: Path,
    work: Path,
    n_ctx: int = 256,
    chunks: int = 4,
    threads: int = 2,
) -> KldResult:
    """llama.cpp's own KLD: save the reference's logits, then score the candidate against them.

    llama-perplexity scores only the second half of each chunk of `n_ctx` tokens (the first
    half is context), with BOS in the chunk's first position. Its logger writes from a worker
    thread that the process does not wait for at exit, so the last lines it printed can be lost
    (llama.cpp #22142, #25504; often, on a loaded machine), the final summary first. So one
    chunk more is run than is read, and the result is the running row printed after chunk
    `chunks`, while the extra chunk computes; where the text has no extra chunk and that row
    was lost, the run is repeated.
    """
    logits = work / f".{reference.stem}.{os.getpid()}.kld-base"
    common = ["-f", str(text_file), "-c", str(n_ctx), "--chunks", str(chunks + 1), "-b", str(n_ctx)]
    row = _chunk_row(chunks)
    found = None
    try:
        run_tool(
            "llama-perplexity",
            ["-m", str(reference), *common, "--kl-divergence-base", str(logits)],
            threads=threads,
        )
        args = ["-m", str(candidate), *common, "--kl-divergence-base", str(logits)]
        for _ in range(_KLD_ATTEMPTS):
            lines = run_tool(
                "llama-perplexity",
                [*args, "--kl-divergence"],
                threads=threads,
                separate_streams=True,
            )
            found = row.search("\n".join(lines))
            if found is not None:
                break
    finally:
        logits.unlink(missing_ok=True)
    if found is None:
        tail = " | ".join(s for s in lines[-8:] if s.strip())[-600:]
        raise EvalError(f"llama-perplexity printed no KL divergence for {chunks} chunks: {tail}")
    ppl, _, kld, _, top = (float(g) for g in found.groups())
    return KldResult(kld, top / 100, ppl, chunks)


def cli_smoke(model: Path, prompt: str = "hi", n_tokens: int = 4) -> str:
    """Load `model` in llama-cli and generate a few tokens, non-interactively; return the log."""
    args = ["-m", str(model), "-p", prompt, "-n", str(n_tokens), "--single-turn", "--temp", "0"]
    return "\n".join(run_tool("llama-cli", [*args, "-c", "256"], threads=1))
