"""`python -m edgekit.tui [MODEL] --device D`: the dashboard without going through `edgekit`."""

import typer

from edgekit.cli.dashboard import dashboard_command

typer.run(dashboard_command)
