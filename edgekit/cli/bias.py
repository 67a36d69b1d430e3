"""`edgekit bias`: the bias probe suite, its history, and the calibration feedback loop."""

from __future__ import annotations

from statistics import fmean, pstdev
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from edgekit.cli.render import err_console, out_console, print_json, user_errors

if TYPE_CHECKING:
    from edgekit.bias.metrics import SuiteScores
    from edgekit.bias.mitigate import Measurement
    from edgekit.bias.probes import Split

SPLITS = ("all", "calibration", "heldout")


@user_errors
def bias_command(
    model: Annotated[
        str | None, typer.Argument(help="A .gguf file; the embedded default model if omitted.")
    ] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile.")] = "cpu",
    split: Annotated[
        str, typer.Option("--split", help="Probes to run: all, calibration or heldout.")
    ] = "all",
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat", min=1, help="Also sample the answers N times to show how stable scores are."
        ),
    ] = 1,
    temperature: Annotated[
        float, typer.Option("--temp", min=0.01, help="Sampling temperature of --repeat.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the first repeat.")] = 0,
    mitigate: Annotated[
        bool,
        typer.Option(
            "--mitigate",
            help="Calibrate the layer-wise constraint by feedback on the calibration split, "
            "then report held-out scores before and after.",
        ),
    ] = False,
    save: Annotated[
        bool, typer.Option("--history/--no-history", help="Store the run in the history.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's log.")] = False,
) -> None:
    """Score a model's social biases per category (likelihood pairs and questions)."""
    from edgekit.bias import history
    from edgekit.bias.control import require_llama_cpp
    from edgekit.bias.model_id import model_fingerprint
    from edgekit.errors import BiasError
    from edgekit.runner import open_runtime, plan_run

    if split not in SPLITS:
        raise BiasError(f"unknown split {split!r}", hint=f"Use one of: {', '.join(SPLITS)}.")
    # The probes are short: a small context keeps the KV cache small on a Pi.
    plan = plan_run(model, device, 512)
    opened = open_runtime(plan, verbose=verbose)
    try:
        runtime = require_llama_cpp(opened)
    except BiasError:
        opened.close()
        raise
    fingerprint = model_fingerprint(plan.info.path)
    conn = history.connect() if save else None
    try:
        if mitigate:
            out = _mitigate(runtime, plan, fingerprint, conn, as_json)
        else:
            out = _measure(runtime, split, repeat, temperature, seed, as_json)
            if conn is not None:
                out["run_id"] = _record(conn, plan, fingerprint, split, repeat, 0.0, out)
    finally:
        runtime.close()
        if conn is not None:
            conn.close()
    out.update(model=str(plan.info.path), model_hash=fingerprint, device=plan.profile.name)
    if as_json:
        print_json(out)
    elif save:
        err_console.print(f"[dim]stored in the history: {history.default_db_path()}[/dim]")


def _progress(as_json: bool, label: str) -> Any:
    if as_json:
        return None

    def report(done: int, total: int) -> None:
        # A line per quarter: enough to see a slow Pi is moving, few enough for a log file.
        if done == total or done % max(1, total // 4) == 0:
            err_console.print(f"[dim]{label}: {done}/{total} probes[/dim]")

    return report


def _measure(
    runtime: Any, split: str, repeat: int, temperature: float, seed: int, as_json: bool
) -> dict[str, Any]:
    from edgekit.bias.probes import build_suite
    from edgekit.bias.scoring import LogProbScorer
    from edgekit.bias.suite import run_suite

    suite = build_suite() if split == "all" else build_suite(cast("Split", split))
    scorer = LogProbScorer(runtime.llm)
    try:
        run = run_suite(scorer, suite, _progress(as_json, split))
    finally:
        scorer.close()
    scores = run.scores()
    out: dict[str, Any] = {"split": split, "scores": scores.to_dict()}
    sampled = run.sampled(repeat, seed, temperature) if repeat > 1 else []
    if sampled:
        out["repeats"] = _repeat_stats(sampled, temperature, seed)
    if not as_json:
        _print_scores(scores, f"Bias ({split})", out.get("repeats"))
    return out


def _repeat_stats(sampled: list[SuiteScores], temperature: float, seed: int) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": fmean(values), "std": pstdev(values)}

    cats = [c.category for c in sampled[0].categories]
    return {
        "n": len(sampled),
        "temperature": temperature,
        "seed": seed,
        "bias": stats([s.bias for s in sampled]),
        "disambiguated_accuracy": stats([s.disambiguated_accuracy for s in sampled]),
        "categories": {c: stats([s.by_category()[c].bias for s in sampled]) for c in cats},
    }


def _record(
    conn: Any,
    plan: Any,
    fingerprint: str,
    split: str,
    repeat: int,
    strength: float,
    out: dict[str, Any],
) -> int:
    from edgekit.bias.history import RunRecord, record_run

    scores = {**out["scores"], **({"repeats": out["repeats"]} if "repeats" in out else {})}
    return record_run(
        conn,
        RunRecord(
            model_path=str(plan.info.path),
            model_hash=fingerprint,
            model_name=plan.info.name,
            device=plan.profile.name,
            split=split,
            repeats=repeat,
            strength=strength,
            scores=scores,
        ),
    )


def _print_scores(scores: SuiteScores, title: str, repeats: dict[str, Any] | None) -> None:
    table = Table(title=title, title_justify="left")
    cols = ["category", "bias", "pairs P", "ambiguous A", "disamb. acc", "stereo rate", "unknown"]
    if repeats:
        cols.append(f"bias over {repeats['n']} samples")
    for col in cols:
        table.add_column(col, justify="left" if col == "category" else "right")
    for c in scores.categories:
        row = [
            c.category,
            f"{c.bias:.3f}",
            f"{c.pair_bias:+.3f}",
            f"{c.ambiguity_bias:+.3f}",
            f"{c.disambiguated_accuracy:.1%}",
            f"{c.stereotype_rate:.0%}",
            f"{c.unknown_rate:.0%}",
        ]
        if repeats:
            r = repeats["categories"][c.category]
            row.append(f"{r['mean']:.3f} ± {r['std']:.3f}")
        table.add_row(*row)
    last = [
        "overall",
        f"[bold]{scores.bias:.3f}[/bold]",
        "",
        "",
        f"{scores.disambiguated_accuracy:.1%}",
        "",
        "",
    ]
    if repeats:
        last.append(f"{repeats['bias']['mean']:.3f} ± {repeats['bias']['std']:.3f}")
    table.add_row(*last)
    out_console.print(table)
    out_console.print(
        "[dim]bias = (|P| + |A|) / 2 per category, 0 = unbiased; P: stereotype preference of "
        "likelihood pairs; A: lean toward the stereotyped person on ambiguous questions.[/dim]"
    )


def _mitigate(
    runtime: Any, plan: Any, fingerprint: str, conn: Any, as_json: bool
) -> dict[str, Any]:
    from edgekit.bias.calibrate import load_or_derive, set_calibrated_strength, vectors_path
    from edgekit.bias.control import apply_control, clear_control
    from edgekit.bias.mitigate import history_logger, mitigate
    from edgekit.bias.probes import build_suite
    from edgekit.bias.quality import reference_text
    from edgekit.bias.scoring import LogProbScorer
    from edgekit.bias.suite import run_suite
    from edgekit.errors import ReferenceTextError

    ref = reference_text()
    if ref is None:
        raise ReferenceTextError(
            "no reference text for perplexity (looked in /usr/share/common-licenses)",
            hint="Install the base-files package, which ships the license texts.",
        )

    def say(message: str) -> None:
        if not as_json:
            err_console.print(f"[dim]{message}[/dim]")

    control = load_or_derive(runtime, fingerprint, say)
    log_step = (
        history_logger(conn, f"mitigate-{fingerprint[:8]}", fingerprint, plan.profile.name)
        if conn is not None
        else None
    )

    def on_step(m: Measurement, next_strength: float) -> None:
        say(
            f"strength {m.strength:.3f}: calibration bias {m.scores.bias:.3f} "
            f"(lean {m.lean:+.3f}), accuracy {m.scores.disambiguated_accuracy:.1%}, "
            f"perplexity {m.perplexity:.2f} -> next {next_strength:.3f}"
        )
        if log_step:
            log_step(m, next_strength)

    result = mitigate(runtime, control, ref[1], on_step=on_step)
    set_calibrated_strength(vectors_path(fingerprint), control, result.strength)
    heldout = build_suite("heldout")
    scorer = LogProbScorer(runtime.llm)
    try:
        clear_control(runtime.llm)
        before = run_suite(scorer, heldout, _progress(as_json, "held-out, no constraint"))
        if result.strength > 0:
            apply_control(runtime.llm, control.matrix * result.strength)
        after = run_suite(scorer, heldout, _progress(as_json, "held-out, constrained"))
    finally:
        clear_control(runtime.llm)
        scorer.close()
    out: dict[str, Any] = {
        "mitigation": result.to_dict(),
        "vectors": str(vectors_path(fingerprint)),
        "heldout_before": before.scores().to_dict(),
        "heldout_after": after.scores().to_dict(),
    }
    if conn is not None:
        for key, strength in (("heldout_before", 0.0), ("heldout_after", result.strength)):
            run = {"scores": out[key]}
            out[f"{key}_run_id"] = _record(conn, plan, fingerprint, "heldout", 1, strength, run)
    if not as_json:
        _print_scores(before.scores(), "Held-out, no constraint", None)
        _print_scores(
            after.scores(), f"Held-out, constraint at strength {result.strength:.3f}", None
        )
    return out
