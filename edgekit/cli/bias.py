"""`edgekit bias`: the front of the bias suites (edgekit.bias.suites), the history, --mitigate.

Options in, tables or JSON out: which suite, how it is read, scored and stored is the suite
registry's business, so this module never branches on a suite's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack, closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from edgekit.cli.render import err_console, out_console, print_json, stage_bar, user_errors
from edgekit.errors import OptionError

if TYPE_CHECKING:
    from edgekit.bias.controller import Measurement
    from edgekit.bias.mitigate import MitigationRequest
    from edgekit.bias.store import ScoredModel
    from edgekit.bias.suites import ScoreTable, SuiteRequest
    from edgekit.bias.suites.base import Progress


@user_errors
def bias_command(
    model: Annotated[
        str | None, typer.Argument(help="A .gguf file; the embedded default model if omitted.")
    ] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile.")] = "cpu",
    suite: Annotated[
        tuple[str, Path] | None,
        typer.Option(
            "--suite",
            metavar="NAME PATH",
            help="A standard benchmark instead of edgekit's suite: `bbq DIR` (BBQ JSONL files) "
            "or `crows-pairs FILE.csv`. With --mitigate, `bbq DIR`: refuse adapters that raise "
            "BBQ bias on a quarter of its templates (100 items per category).",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Score N items per BBQ file / CrowS pairs (seeded)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="edgekit suite: all, calibration or heldout.")
    ] = "all",
    adapter: Annotated[
        Path | None, typer.Option("--adapter", help="Score with this LoRA adapter applied.")
    ] = None,
    scale: Annotated[float, typer.Option("--scale", help="Scale of --adapter.")] = 1.0,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat", min=1, help="Also sample the answers N times to show how stable scores are."
        ),
    ] = 1,
    temperature: Annotated[
        float, typer.Option("--temp", min=0.01, help="Sampling temperature of --repeat.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of sampling and bootstrap.")] = 0,
    mitigate: Annotated[
        bool,
        typer.Option(
            "--mitigate",
            help="Derive the erasure adapter, choose its blocks and rank on the calibration split "
            "(out of fold), then report held-out scores before and after.",
        ),
    ] = False,
    iterations: Annotated[
        int,
        typer.Option(
            "--iterations",
            min=1,
            help="--mitigate: ranks tried per block set (6, 9, 12, ... directions per category).",
        ),
    ] = 3,
    bands: Annotated[
        int,
        typer.Option(
            "--bands",
            min=1,
            help="--mitigate: block sets tried: all blocks, then the last (bands-1)/bands, ...",
        ),
    ] = 3,
    save: Annotated[
        bool, typer.Option("--history/--no-history", help="Store the run in the history.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's log.")] = False,
) -> None:
    """Score a model's social biases per category; --mitigate erases them with a LoRA adapter."""
    from edgekit.bias import store
    from edgekit.bias.mitigate import MitigationRequest
    from edgekit.bias.suites import BUILT_IN, SUITES, SuiteRequest, record_scores, standard_suite
    from edgekit.bias.suites.edgekit import check_split

    check_split(split)
    name = BUILT_IN if suite is None else suite[0]
    chosen = SUITES[name] if suite is None else standard_suite(name)
    path = None if suite is None else suite[1]
    request = SuiteRequest(path, limit, split, repeat, temperature, seed)
    items = chosen.read(request)
    checked = _bbq_check(name, items) if mitigate else ()  # refused before minutes of loading
    with ExitStack() as stack:
        # The history before the model: a corrupt or foreign one must fail before minutes of
        # loading and scoring.
        conn = stack.enter_context(closing(store.connect())) if save else None
        runtime, scored = _open(stack, model, device, adapter, scale, verbose)
        if mitigate:
            mitigation = MitigationRequest(iterations, bands, checked)
            out = _mitigate(runtime, scored, conn, mitigation, as_json)
        else:
            out = _score(runtime, name, items, request, as_json)
            if conn is not None:
                strength = scale if adapter is not None else 0.0
                out["run_id"] = record_scores(conn, scored, out, request, strength)
    out.update(model=scored.path, model_hash=scored.hash, device=scored.device)
    if as_json:
        print_json(out)
    elif save:
        err_console.print(Text(f"stored in the history: {store.default_db_path()}", style="dim"))


def _open(
    stack: ExitStack,
    model: str | None,
    device: str,
    adapter: Path | None,
    scale: float,
    verbose: bool,
) -> tuple[Any, ScoredModel]:
    """The model's runtime (closed with `stack`), with the adapter applied, and its identity."""
    from edgekit.backends.runner import open_runtime, plan_run
    from edgekit.bias.controller import require_runtime
    from edgekit.bias.erasure import check_adapter
    from edgekit.bias.store import ScoredModel, model_fingerprint

    # The probes are short: a small context keeps the KV cache small on a Pi.
    plan = plan_run(model, device, 512)
    if adapter is not None:
        check_adapter(adapter, plan.info)
    runtime = require_runtime(stack.enter_context(closing(open_runtime(plan, verbose=verbose))))
    if adapter is not None:
        runtime.set_lora(adapter, scale)
    fingerprint = model_fingerprint(plan.info.path)
    return runtime, ScoredModel(str(plan.info.path), fingerprint, plan.info.name, plan.profile.name)


def _score(
    runtime: Any, name: str, items: Any, request: SuiteRequest, as_json: bool
) -> dict[str, Any]:
    from edgekit.bias.suites import score_suite, suite_title, tables

    out = score_suite(runtime, name, items, request, _progress(suite_title(name)))
    if not as_json:
        _print_tables(tables(out))
    return out


def _bbq_check(name: str, items: Sequence[Any]) -> tuple[Any, ...]:
    """--mitigate --suite bbq DIR: the calibration templates' items a candidate must not make
    more biased (the other three quarters stay for reporting)."""
    from edgekit.bias.suites import BUILT_IN
    from edgekit.bias.suites.bbq import CHECK_ITEMS, calibration_part, per_category

    if name == BUILT_IN:
        return ()
    if name != "bbq":
        raise OptionError(
            f"--mitigate checks its adapter against BBQ only, not {name}",
            hint="Drop --suite, or pass --suite bbq DIR.",
        )
    return tuple(per_category(calibration_part(items), CHECK_ITEMS))


def _mitigate(
    runtime: Any,
    scored: ScoredModel,
    conn: Any,
    request: MitigationRequest,
    as_json: bool,
) -> dict[str, Any]:
    from edgekit.bias.mitigate import MitigationHooks, mitigate, record_mitigation
    from edgekit.bias.suites.edgekit import scores_table

    hooks = MitigationHooks(
        say=partial(_say, as_json),
        on_step=None if as_json else _show_step,
        progress=_progress,
    )
    result = mitigate(runtime, scored, request, hooks, conn)
    out = result.to_dict()
    if conn is not None:
        out.update(record_mitigation(conn, scored, result))
    if as_json:
        return out
    scale = result.erasure.scale
    _print_tables(
        [
            scores_table(out["heldout_before"], "Held-out, base model"),
            scores_table(out["heldout_after"], f"Held-out, erasure adapter at scale {scale:.3f}"),
        ]
    )
    r = out["heldout_change"]["bias_reduction"]
    out_console.print(
        Text(
            f"held-out bias reduction {r['value']:.1%} (95% interval {r['low']:.1%} .. "
            f"{r['high']:.1%}); adapter: {result.erasure.adapter} (llama-cli --lora-scaled FILE "
            f"{scale:.3f})"
        )
    )
    return out


def _say(as_json: bool, message: str) -> None:
    if not as_json:
        err_console.print(Text(message, style="dim"))


def _show_step(m: Measurement, next_scale: float) -> None:
    _say(
        False,
        f"{m.label}: calibration bias {m.scores.bias:.3f} (lean {m.lean:+.3f}), accuracy "
        f"{m.scores.disambiguated_accuracy:.1%}, perplexity {m.perplexity:.2f} -> next "
        f"{next_scale:.3f}",
    )


def _progress(label: str) -> Progress | None:
    """A bar with an ETA on stderr for each stage, with --json too (stdout stays the JSON)."""
    return stage_bar(label)


def _print_tables(tables: Sequence[ScoreTable]) -> None:
    """Every cell as Text, never markup: category names come from the user's data files."""
    for t in tables:
        table = Table(title=Text(t.title), title_justify="left")
        for n, column in enumerate(t.columns):
            table.add_column(Text(column), justify="left" if n == 0 else "right")
        for row in t.rows:
            table.add_row(*map(Text, row))
        if t.total:
            table.add_row(*(Text(cell, style="bold") for cell in t.total))
        out_console.print(table)
        if t.note:
            out_console.print(Text(t.note, style="dim"))
