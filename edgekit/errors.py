"""The one exception hierarchy. Every error a user can cause is an EdgekitError with a hint.

The CLI renders these as a single message and exit code 2; anything else is a bug and keeps its
traceback. Set EDGEKIT_DEBUG=1 to get tracebacks for user errors too.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """A problem the user can fix; `hint` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str | None]:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


class ModelFileError(EdgekitError):
    """The model file is missing, unreadable or not what it claims to be."""


class ModelNotFoundError(ModelFileError):
    pass


class NotAGGUFError(ModelFileError):
    pass


class TruncatedModelError(ModelFileError):
    pass


class UnsupportedModelError(ModelFileError):
    pass


class DefaultModelError(EdgekitError):
    """The embedded default model could not be installed or assembled."""


class DeviceError(EdgekitError):
    pass


class UnknownDeviceError(DeviceError):
    pass


class ProfileError(DeviceError):
    """A device profile file is malformed."""


class ModelTooBigError(DeviceError):
    """The memory estimate exceeds the device's budget; raised before loading."""


class PromptError(EdgekitError):
    pass


class EmptyPromptError(PromptError):
    pass


class PromptTooLongError(PromptError):
    pass


class RuntimeBackendError(EdgekitError):
    """The inference back end is missing or broken."""


class BrokenBuildError(RuntimeBackendError):
    pass


class ConversionError(EdgekitError):
    """A model could not be converted, calibrated or quantized."""


class UnsupportedArchitectureError(ConversionError):
    pass


class CalibrationError(ConversionError):
    pass


class PlanError(ConversionError):
    """The requested recipe or budget cannot be met for this model."""


class OutputPathError(ConversionError):
    """The output cannot be written there: not writable, or not enough space."""


class EvalError(EdgekitError):
    """A model could not be evaluated (mismatched vocabularies, no evaluation text)."""


class BiasError(EdgekitError):
    """The bias suite, its constraint or its history could not do what was asked."""


class AdapterFileError(BiasError):
    """A LoRA adapter file is missing, unreadable, or made for another model."""


class BiasDataError(BiasError):
    """A bias benchmark file (BBQ JSONL, CrowS-Pairs CSV) is missing fields or not UTF-8."""


class HistoryCorruptError(BiasError):
    """The bias history database cannot be read; it is left as it is."""


class ReferenceTextError(BiasError):
    """No real text to measure perplexity on was found on this machine."""
