"""Options several commands share, so each one reads and behaves the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", "-t", help="CPU threads.")]
EvalFileOpt = Annotated[
    Path | None,
    typer.Option("--eval-file", help="Evaluation text (default: the system's GPL-3 text)."),
]
WindowsOpt = Annotated[int, typer.Option("--eval-windows", help="Windows of 256 tokens.")]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        "-t",
        min=1,
        help="Decode threads, as llama-cli's -t (default: one per core other work leaves free, "
        "re-checked while decoding); more than the CPUs here are lowered to their count.",
    ),
]
