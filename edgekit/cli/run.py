"""`edgekit run`: stream a completion (with -p) or chat (without), then the stats line."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.text import Text

from edgekit.backends.conversation import fit_history
from edgekit.cli.checks import (
    check_generation_options,
    check_kv_cache,
    check_text,
)
from edgekit.cli.options import ThreadsOption
from edgekit.cli.render import (
    err_console,
    mib,
    print_json,
    user_errors,
    write_model_text,
    write_stdout,
)
from edgekit.errors import PromptEncodingError, PromptError

if TYPE_CHECKING:
    from edgekit.backends.base import GenerationResult, Runtime, SamplingParams
    from edgekit.backends.runner import RunPlan


@user_errors
def run_command(
    model: Annotated[
        str | None,
        typer.Argument(help="A .gguf file or an ONNX folder; the default model if omitted."),
    ] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile.")] = "cpu",
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", help="Prompt; chat mode when omitted.")
    ] = None,
    ctx: Annotated[
        int | None, typer.Option("--ctx", "-c", help="Context size (default: the profile's).")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", "-n", help="Tokens to generate.")
    ] = 256,
    temperature: Annotated[float, typer.Option("--temp", help="Temperature; 0 is greedy.")] = 0.8,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
    top_k: Annotated[int, typer.Option("--top-k")] = 40,
    min_p: Annotated[float, typer.Option("--min-p")] = 0.05,
    repeat_penalty: Annotated[float, typer.Option("--repeat-penalty")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", "-s", help="-1 picks a random seed.")] = -1,
    threads: ThreadsOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (per chat turn).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's log.")] = False,
    bias_guard: Annotated[
        bool,
        typer.Option(
            "--bias-guard", help="Measure each output's bias and steer the next one (llama.cpp)."
        ),
    ] = False,
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            help="RPC workers HOST:PORT[,HOST:PORT...] that hold layers (`edgekit worker`).",
        ),
    ] = None,
) -> None:
    """Run a model on a device profile, streaming tokens, then report speed and memory."""
    from edgekit.backends.base import SamplingParams

    typed = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        seed=seed,
    )
    params = check_generation_options(typed, ctx)
    if prompt is not None:
        check_text(prompt)
    target = RunTarget(model, device, ctx, threads, rpc)
    plan, runtime = _open(target, bias_guard=bias_guard, verbose=verbose, quiet=as_json)
    if bias_guard:
        runtime = _guarded(runtime, plan, quiet=as_json)
    for note in runtime.notes:
        err_console.print(Text(f"note: {note}", style="yellow"))
    try:
        if prompt is not None:
            _complete(runtime, plan, prompt, params, as_json)
        else:
            _chat(runtime, plan, params, as_json)
    finally:
        runtime.close()


@dataclass(frozen=True)
class RunTarget:
    """What `edgekit run` loads and where: the model, the device profile, the context (None: the
    profile's), a fixed thread count (None: the back end's choice) and the RPC workers."""

    model: str | None
    device: str
    ctx: int | None
    threads: int | None
    rpc: str | None


def _open(
    target: RunTarget, *, bias_guard: bool, verbose: bool, quiet: bool
) -> tuple[RunPlan, Runtime]:
    """The plan and the loaded runtime: over RPC workers when --rpc or the profile asks for them,
    else in this process (threads clamped to the CPUs here, the plan announced)."""
    from edgekit.backends.runner import clamp_threads, open_runtime, plan_run
    from edgekit.cli.pool import open_with_workers, wants_workers

    if wants_workers(target.rpc, target.device):
        if bias_guard:
            from edgekit.errors import EdgekitError

            raise EdgekitError(
                "--bias-guard steers llama.cpp in this process; it cannot be combined with --rpc",
                hint="Run without one of them.",
            )
        return open_with_workers(
            target.model, target.device, target.ctx, target.rpc, verbose, quiet=quiet
        )
    plan, threads_note = clamp_threads(
        plan_run(target.model, target.device, target.ctx, threads=target.threads)
    )
    check_kv_cache(plan)
    if threads_note:
        err_console.print(Text(f"note: {threads_note}", style="yellow"))
    if not quiet:
        _announce(plan)
    return plan, open_runtime(plan, verbose=verbose)


def _guarded(runtime: Runtime, plan: RunPlan, *, quiet: bool) -> Runtime:
    """`runtime` with the bias guard steering it; `runtime` is closed if the guard cannot start."""
    from edgekit.bias.guard import guard_runtime

    def notify(message: str) -> None:
        if not quiet:
            err_console.print(f"[yellow]bias guard: {message}[/yellow]")

    try:
        return guard_runtime(runtime, plan.profile.name, notify)
    except BaseException:
        runtime.close()
        raise


def _announce(plan: RunPlan) -> None:
    i, p, e = plan.info, plan.profile, plan.estimate
    # Text, not markup: the model's name comes from its file.
    line = (
        f"{i.name} ({i.file_type}, {i.bits_per_weight:.2f} bpw) on {p.name}: "
        f"{_threads_label(plan)}, ctx {plan.n_ctx}, est. {mib(e.against_budget)} of "
        f"{mib(e.budget)} budget"
    )
    err_console.print(Text(line, style="dim"))


def _threads_label(plan: RunPlan) -> str:
    if plan.threads is not None:
        return f"{plan.threads} threads"
    return f"up to {plan.profile.threads} threads (fewer while other work holds cores)"


def _complete(
    runtime: Runtime, plan: RunPlan, prompt: str, params: SamplingParams, as_json: bool
) -> None:
    tokens = runtime.prompt_tokens(prompt)
    result = runtime.generate(tokens, params, on_token=None if as_json else _write)
    _report(result, plan, as_json)


def _chat(runtime: Runtime, plan: RunPlan, params: SamplingParams, as_json: bool) -> None:
    if sys.stdin is None:  # started with stdin closed (`<&-`): Python has no stream at all
        raise PromptError(
            "chat mode reads messages from standard input, which is closed",
            hint="Give a prompt with -p, or pipe the messages in.",
        )
    interactive = _isatty(sys.stdin)
    if interactive and not as_json:
        err_console.print("[dim]Chat mode: type a message; /exit or Ctrl-D ends.[/dim]")
    messages: list[dict[str, str]] = []
    while True:
        if interactive and not as_json:
            err_console.print("[bold cyan]> [/bold cyan]", end="")
        line = _read_message()
        if not line or line.strip() in {"/exit", "/quit"}:
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.strip()})
        tokens, dropped = fit_history(runtime, messages, plan.n_ctx, params.max_tokens)
        if dropped and not as_json:
            err_console.print(
                Text(
                    f"note: dropped the {dropped} oldest turn(s) to fit the context of "
                    f"{plan.n_ctx} tokens",
                    style="yellow",
                )
            )
        result = runtime.generate(tokens, params, on_token=None if as_json else _write)
        messages.append({"role": "assistant", "content": result.text.strip()})
        _report(result, plan, as_json, dropped)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _read_message() -> str:
    """One line of stdin; a stream that fails (closed, a vanished terminal) ends the chat."""
    try:
        return check_text(sys.stdin.readline(), "the chat message")
    except UnicodeDecodeError as e:
        raise PromptEncodingError(
            f"the chat message is not valid UTF-8 text ({e.reason})"
        ) from None
    except (OSError, ValueError):
        return ""


def _write(piece: str) -> None:
    write_model_text(piece)


def _report(result: GenerationResult, plan: RunPlan, as_json: bool, dropped: int = 0) -> None:
    if as_json:
        doc = {
            "model": str(plan.info.path),
            "device": plan.profile.name,
            "context": plan.n_ctx,
            "text": result.text,
            "stats": result.stats.to_dict(),
            "memory_estimate": plan.estimate.to_dict(),
        }
        print_json(doc | ({"dropped_turns": dropped} if dropped else {}))
        return
    write_stdout("\n")
    err_console.print(f"[green]{result.stats.summary()}[/green]")
