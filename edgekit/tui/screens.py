"""Modal screens: a user error (worded as the CLI words it) and the model switcher."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from edgekit.errors import EdgekitError

ERROR_TITLE = "edgekit: error"  # the title of the CLI's error panel (edgekit/cli/render.py)


def error_text(error: EdgekitError) -> Text:
    """The CLI's error panel body: the message in bold, then the hint on its own line."""
    text = Text(error.message, style="bold")
    if error.hint:
        text.append("\n" + error.hint)
    return text


class ErrorScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, error: EdgekitError) -> None:
        super().__init__(id="error-screen")
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box") as box:
            box.border_title = ERROR_TITLE
            yield Static(error_text(self.error), id="error-text")
            yield Button("OK", variant="error", id="error-ok")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)


class SwitchModelScreen(ModalScreen[str | None]):
    """Asks for another model; dismisses with the path ("" for the default model) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__(id="switch-screen")
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="switch-box") as box:
            box.border_title = "Switch model"
            yield Label("A .gguf file or an ONNX folder; empty for the default model.")
            yield Input(self.current, id="switch-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
