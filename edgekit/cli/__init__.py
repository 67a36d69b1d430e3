"""The `edgekit` command: a thin front over the core. Heavy modules load inside each command."""

from __future__ import annotations

import typer

from edgekit.cli.bias import bias_command
from edgekit.cli.convert import convert_command
from edgekit.cli.dashboard import dashboard_command
from edgekit.cli.devices import devices_app
from edgekit.cli.eval import eval_command
from edgekit.cli.inspect import inspect_command
from edgekit.cli.model import model_app
from edgekit.cli.run import run_command
from edgekit.cli.serve import serve_command
from edgekit.cli.tools import tools_app
from edgekit.cli.worker import worker_command

app = typer.Typer(
    help="Run language models well on a Raspberry Pi, a Mac or a CUDA box.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run_command)
app.command("serve")(serve_command)
app.command("inspect")(inspect_command)
app.command("convert")(convert_command)
app.command("eval")(eval_command)
app.command("bias")(bias_command)
app.command("dashboard")(dashboard_command)
app.command("worker")(worker_command)
app.add_typer(devices_app, name="devices")
app.add_typer(model_app, name="model")
app.add_typer(tools_app, name="tools")


def main() -> None:
    app()
