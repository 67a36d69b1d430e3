"""`edgekit run`: stream a completion (with -p) or chat (without), then the stats line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from edgekit.cli.render import err_console, mib, print_json, user_errors

if TYPE_CHECKING:
    from edgekit.backends.base import GenerationResult, Runtime, SamplingParams
    from edgekit.runner import RunPlan


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
) -> None:
    """Run a model on a device profile, streaming tokens, then report speed and memory."""
    from edgekit.backends.base import SamplingParams
    from edgekit.runner import open_runtime, plan_run

    plan = plan_run(model, device, ctx)
    if not as_json:
        _announce(plan)
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        seed=0xFFFFFFFF if seed < 0 else seed,
    )
    runtime = open_runtime(plan, verbose=verbose)
    if bias_guard:
        from edgekit.bias.guard import guard_runtime

        def notify(message: str) -> None:
            if not as_json:
                err_console.print(f"[yellow]bias guard: {message}[/yellow]")

        try:
            runtime = guard_runtime(runtime, plan.profile.name, notify)
        except BaseException:
            runtime.close()
            raise
    for note in runtime.notes:
        err_console.print(f"[yellow]note: {note}[/yellow]")
    try:
        if prompt is not None:
            _complete(runtime, plan, prompt, params, as_json)
        else:
            _chat(runtime, plan, params, as_json)
    finally:
        runtime.close()


def _announce(plan: RunPlan) -> None:
    i, p, e = plan.info, plan.profile, plan.estimate
    err_console.print(
        f"[dim]{i.name} ({i.file_type}, {i.bits_per_weight:.2f} bpw) on {p.name}: "
        f"{p.threads} threads, ctx {plan.n_ctx}, est. {mib(e.against_budget)} of "
        f"{mib(e.budget)} budget[/dim]"
    )


def _complete(
    runtime: Runtime, plan: RunPlan, prompt: str, params: SamplingParams, as_json: bool
) -> None:
    tokens = runtime.prompt_tokens(prompt)
    result = runtime.generate(tokens, params, on_token=None if as_json else _write)
    _report(result, plan, as_json)


def _chat(runtime: Runtime, plan: RunPlan, params: SamplingParams, as_json: bool) -> None:
    interactive = sys.stdin.isatty()
    if interactive and not as_json:
        err_console.print("[dim]Chat mode: type a message; /exit or Ctrl-D ends.[/dim]")
    messages: list[dict[str, str]] = []
    while True:
        if interactive and not as_json:
            err_console.print("[bold cyan]> [/bold cyan]", end="")
        line = sys.stdin.readline()
        if not line or line.strip() in {"/exit", "/quit"}:
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.strip()})
        tokens = runtime.prompt_tokens(runtime.format_chat(messages))
        result = runtime.generate(tokens, params, on_token=None if as_json else _write)
        messages.append({"role": "assistant", "content": result.text.strip()})
        _report(result, plan, as_json)


def _write(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _report(result: GenerationResult, plan: RunPlan, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "model": str(plan.info.path),
                "device": plan.profile.name,
                "context": plan.n_ctx,
                "text": result.text,
                "stats": result.stats.to_dict(),
                "memory_estimate": plan.estimate.to_dict(),
            }
        )
        return
    sys.stdout.write("\n")
    err_console.print(f"[green]{result.stats.summary()}[/green]")
