"""`edgekit bias`: bias scores (edgekit's suite, BBQ, CrowS-Pairs), the history, --mitigate."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean, pstdev
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from edgekit.cli.render import err_console, out_console, print_json, user_errors

if TYPE_CHECKING:
    from edgekit.bias.controller import Measurement
    from edgekit.bias.probes import Split
    from edgekit.bias.scores import SuiteScores

SPLITS = ("all", "calibration", "heldout")
SUITES = ("edgekit", "bbq", "crows-pairs")


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
            "or `crows-pairs FILE.csv`.",
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
    from edgekit.backends.runner import open_runtime, plan_run
    from edgekit.bias import store
    from edgekit.bias.controller import require_runtime
    from edgekit.errors import BiasError

    if split not in SPLITS:
        raise BiasError(f"unknown split {split!r}", hint=f"Use one of: {', '.join(SPLITS)}.")
    if suite is not None and suite[0] not in SUITES[1:]:
        raise BiasError(f"unknown suite {suite[0]!r}", hint="Use `bbq DIR` or `crows-pairs FILE`.")
    # The history first: a corrupt one must fail before minutes of model loading.
    conn = store.connect() if save else None
    data = _read_suite(suite, limit, seed) if suite else None
    # The probes are short: a small context keeps the KV cache small on a Pi.
    plan = plan_run(model, device, 512)
    if adapter is not None:
        from edgekit.bias.erasure import check_adapter

        check_adapter(adapter, plan.info)
    opened = open_runtime(plan, verbose=verbose)
    try:
        runtime = require_runtime(opened)
        fingerprint = store.model_fingerprint(plan.info.path)
        if adapter is not None:
            runtime.set_lora(adapter, scale)
        if mitigate:
            out = _mitigate(runtime, plan, fingerprint, conn, as_json, iterations, bands)
        elif suite is not None:
            out = _standard(runtime, suite[0], data, seed, as_json)
            if conn is not None:
                out["run_id"] = _record(conn, plan, fingerprint, "all", 1, scale, out, suite[0])
        else:
            out = _measure(runtime, split, repeat, temperature, seed, as_json)
            if conn is not None:
                out["run_id"] = _record(conn, plan, fingerprint, split, repeat, 0.0, out)
    finally:
        opened.close()
        if conn is not None:
            conn.close()
    out.update(model=str(plan.info.path), model_hash=fingerprint, device=plan.profile.name)
    if as_json:
        print_json(out)
    elif save:
        err_console.print(f"[dim]stored in the history: {store.default_db_path()}[/dim]")


def _progress(as_json: bool, label: str) -> Any:
    if as_json:
        return None

    def report(done: int, total: int) -> None:
        # A line per quarter: enough to see a slow Pi is moving, few enough for a log file.
        if done == total or done % max(1, total // 4) == 0:
            err_console.print(f"[dim]{label}: {done}/{total}[/dim]")

    return report


def _read_suite(suite: tuple[str, Path], limit: int | None, seed: int) -> Any:
    from edgekit.bias.standard import read_bbq, read_crows

    name, path = suite
    return read_bbq(path, limit, seed) if name == "bbq" else read_crows(path, limit, seed)


def _standard(runtime: Any, name: str, data: Any, seed: int, as_json: bool) -> dict[str, Any]:
    from edgekit.bias import standard
    from edgekit.bias.logprobs import LogProbScorer

    scorer = LogProbScorer(runtime.logits())
    try:
        if name == "bbq":
            answers = standard.answer_bbq(scorer, data, _progress(as_json, "BBQ"))
            scores = standard.bbq_scores(data, answers, seed=seed)
        else:
            prefers = standard.crows_preferences(scorer, data, _progress(as_json, "CrowS-Pairs"))
            scores = standard.crows_scores(data, prefers, seed=seed)
    finally:
        scorer.close()
    out: dict[str, Any] = {"suite": name, "scores": scores}
    if not as_json:
        _print_standard(name, scores)
    return out


def _ci(d: dict[str, float], fmt: str = "{:+.3f}") -> str:
    return f"{fmt.format(d['value'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"


def _print_standard(name: str, scores: dict[str, Any]) -> None:
    if name == "bbq":
        table = Table(
            title="BBQ (Parrish et al. 2022), 95% bootstrap intervals", title_justify="left"
        )
        for col in ("category", "n", "s_DIS", "s_AMB", "acc. disamb.", "acc. ambig."):
            table.add_column(col, justify="left" if col == "category" else "right")
        for cat, s in scores.items():
            table.add_row(
                cat,
                str(s["n"]),
                _ci(s["s_dis"]),
                _ci(s["s_amb"]),
                _ci(s["disambiguated_accuracy"], "{:.1%}"),
                _ci(s["ambiguous_accuracy"], "{:.1%}"),
            )
    else:
        table = Table(
            title="CrowS-Pairs: % of pairs where the stereotype is more likely (50 = unbiased)",
            title_justify="left",
        )
        for col in ("bias type", "n", "stereotype %"):
            table.add_column(col, justify="left" if col == "bias type" else "right")
        for t, s in [("all", scores["stereotype_share"]), *scores["bias_types"].items()]:
            table.add_row(t, str(s["n"]), _ci(s, "{:.1f}"))
    out_console.print(table)


def _measure(
    runtime: Any, split: str, repeat: int, temperature: float, seed: int, as_json: bool
) -> dict[str, Any]:
    from edgekit.bias.intervals import bootstrap
    from edgekit.bias.logprobs import LogProbScorer
    from edgekit.bias.probes import build_suite
    from edgekit.bias.scores import run_suite

    suite = build_suite() if split == "all" else build_suite(cast("Split", split))
    scorer = LogProbScorer(runtime.logits())
    try:
        run = run_suite(scorer, suite, _progress(as_json, split))
    finally:
        scorer.close()
    scores = run.scores()
    intervals = {k: v.to_dict() for k, v in bootstrap(run, seed=seed).items()}
    out: dict[str, Any] = {"suite": "edgekit", "split": split, "scores": scores.to_dict()}
    out["scores"]["intervals"] = intervals
    sampled = run.sampled(repeat, seed, temperature) if repeat > 1 else []
    if sampled:
        out["repeats"] = _repeat_stats(sampled, temperature, seed)
    if not as_json:
        _print_scores(scores, f"Bias ({split})", out.get("repeats"), intervals)
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
    suite: str = "edgekit",
) -> int:
    from edgekit.bias.store import RunRecord, record_run

    if suite == "edgekit":
        scores = {**out["scores"], **({"repeats": out["repeats"]} if "repeats" in out else {})}
    else:
        scores = _standard_record(suite, out["scores"])
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
            suite=suite,
        ),
    )


def _standard_record(suite: str, scores: dict[str, Any]) -> dict[str, Any]:
    """A standard benchmark's scores in the history's per-category shape (raw ones kept)."""
    cats: dict[str, dict[str, float]] = {}
    if suite == "bbq":
        for c, s in scores.items():
            dis, amb = s["s_dis"]["value"], s["s_amb"]["value"]
            acc = s["disambiguated_accuracy"]["value"]
            cats[c] = {
                "bias": (abs(dis) + abs(amb)) / 2,
                "pair_bias": dis,
                "ambiguity_bias": amb,
                "disambiguated_accuracy": acc,
            }
    else:
        for t, s in scores["bias_types"].items():
            lean = (s["value"] - 50) / 50
            cats[t] = {
                "bias": abs(lean),
                "pair_bias": lean,
                "ambiguity_bias": 0.0,
                "disambiguated_accuracy": 0.0,
            }
    n = len(cats) or 1
    return {
        "bias": sum(c["bias"] for c in cats.values()) / n,
        "disambiguated_accuracy": sum(c["disambiguated_accuracy"] for c in cats.values()) / n,
        "categories": cats,
        "raw": scores,
    }


def _print_scores(
    scores: SuiteScores,
    title: str,
    repeats: dict[str, Any] | None,
    intervals: dict[str, Any] | None = None,
) -> None:
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
    overall = f"[bold]{scores.bias:.3f}[/bold]"
    if intervals:
        b = intervals["bias"]
        overall += f" [{b['low']:.3f}, {b['high']:.3f}]"
    last = ["overall", overall, "", "", f"{scores.disambiguated_accuracy:.1%}", "", ""]
    if repeats:
        last.append(f"{repeats['bias']['mean']:.3f} ± {repeats['bias']['std']:.3f}")
    table.add_row(*last)
    out_console.print(table)
    out_console.print(
        "[dim]bias = (|P| + |A|) / 2 per category, 0 = unbiased; P: stereotype preference of "
        "likelihood pairs; A: lean toward the stereotyped person on ambiguous questions; "
        "[low, high]: 95% bootstrap interval over probes.[/dim]"
    )


def _mitigate(
    runtime: Any,
    plan: Any,
    fingerprint: str,
    conn: Any,
    as_json: bool,
    iterations: int = 3,
    bands: int = 3,
) -> dict[str, Any]:
    from edgekit.bias.calibrate import calibrate_erasure, rank_steps
    from edgekit.bias.controller import ErasureConstraint, MitigationConfig, history_logger
    from edgekit.bias.intervals import paired_reduction
    from edgekit.bias.logprobs import LogProbScorer
    from edgekit.bias.perplexity import reference_text
    from edgekit.bias.probes import build_suite
    from edgekit.bias.scores import run_suite
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

    log_step = (
        history_logger(conn, f"mitigate-{fingerprint[:8]}", fingerprint, plan.profile.name)
        if conn is not None
        else None
    )

    def on_step(m: Measurement, next_scale: float) -> None:
        say(
            f"{m.label}: calibration bias {m.scores.bias:.3f} "
            f"(lean {m.lean:+.3f}), accuracy {m.scores.disambiguated_accuracy:.1%}, "
            f"perplexity {m.perplexity:.2f} -> next {next_scale:.3f}"
        )
        if log_step:
            log_step(m, next_scale)

    say("deriving group directions and the erasure adapter from the calibration split and lexicon")
    config = MitigationConfig(ranks=rank_steps(iterations))
    erasure = calibrate_erasure(
        runtime,
        fingerprint,
        ref[1],
        config,
        on_step=on_step,
        bands=bands,
        progress=_progress(as_json, "group directions (sentences read)"),
    )
    heldout = build_suite("heldout")
    constraint = ErasureConstraint(runtime, erasure.adapter)
    scorer = LogProbScorer(runtime.logits())
    try:
        constraint.apply(0.0)
        before = run_suite(scorer, heldout, _progress(as_json, "held-out, base model"))
        constraint.apply(erasure.scale)
        after = run_suite(scorer, heldout, _progress(as_json, "held-out, erasure adapter"))
    finally:
        constraint.apply(0.0)
        scorer.close()
    change = {k: v.to_dict() for k, v in paired_reduction(before, after).items()}
    out: dict[str, Any] = {
        **erasure.to_dict(),
        "heldout_before": before.scores().to_dict(),
        "heldout_after": after.scores().to_dict(),
        "heldout_change": change,
    }
    if conn is not None:
        for key, s in (("heldout_before", 0.0), ("heldout_after", erasure.scale)):
            run = {"scores": out[key]}
            out[f"{key}_run_id"] = _record(conn, plan, fingerprint, "heldout", 1, s, run)
    if not as_json:
        _print_scores(before.scores(), "Held-out, base model", None)
        _print_scores(
            after.scores(), f"Held-out, erasure adapter at scale {erasure.scale:.3f}", None
        )
        r = change["bias_reduction"]
        out_console.print(
            f"held-out bias reduction {r['value']:.1%} (95% interval {r['low']:.1%} .. "
            f"{r['high']:.1%}); adapter: {erasure.adapter} (llama-cli --lora-scaled FILE "
            f"{erasure.scale:.3f})"
        )
    return out
