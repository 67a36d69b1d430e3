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


class CorruptModelError(ModelFileError):
    """The file is a GGUF but its header contradicts itself or the GGUF format."""


class HeaderLimitError(CorruptModelError):
    """A count, length or size in the header exceeds the file or a sane limit."""


class MetadataTypeError(CorruptModelError):
    """A metadata value has the wrong GGUF type (a string where a number belongs, ...)."""


class MetadataValueError(CorruptModelError):
    """A metadata value has the right type but an impossible value (zero heads, NaN, ...)."""


class TensorInfoError(CorruptModelError):
    """An entry of the tensor table is impossible (dimensions, name, offset)."""


class ModelLoadError(ModelFileError):
    """llama.cpp refused a file whose header edgekit reads cleanly."""


class ModelSanityError(ModelFileError):
    """The model loads but its first forward pass or its special tokens are broken."""


class DefaultModelError(EdgekitError):
    """The embedded default model could not be installed or assembled."""


class DeviceError(EdgekitError):
    pass


class UnknownDeviceError(DeviceError):
    pass


class ProfileError(DeviceError):
    """A device profile file is malformed."""


class ProfileSyntaxError(ProfileError):
    """The profile is not readable TOML (not UTF-8, bad syntax, nested too deep, too big)."""


class ProfileKeyError(ProfileError):
    """The profile has a key or table the schema does not know (or lacks a required one)."""


class ProfileValueError(ProfileError):
    """A profile value has the wrong type or is out of range."""


class ModelTooBigError(DeviceError):
    """The memory estimate exceeds the device's budget; raised before loading."""


class ContextCreationError(DeviceError):
    """The model loaded but llama.cpp refused the context the settings ask for."""


class PromptError(EdgekitError):
    pass


class EmptyPromptError(PromptError):
    pass


class PromptTooLongError(PromptError):
    @classmethod
    def for_prompt(cls, n_tokens: int, n_ctx: int, model_ctx: int) -> PromptTooLongError:
        """The error with a context to suggest that is real: enough room, capped at the model's."""
        message = f"the prompt is {n_tokens} tokens but the context holds {n_ctx}"
        if n_tokens >= model_ctx:
            hint = f"Shorten the prompt: it is longer than the model's context of {model_ctx}."
        else:
            # Room for the prompt and a reply of 256 tokens, in llama.cpp's 256-cell steps.
            suggested = min(model_ctx, -(-(n_tokens + 256) // 256) * 256)
            hint = f"Shorten the prompt or raise the context (--ctx {suggested}); the model's "
            hint += f"maximum is {model_ctx}."
        return cls(message, hint=hint)


class PromptEncodingError(PromptError):
    """The prompt is not valid UTF-8 text."""


class DataDirError(EdgekitError):
    """A folder edgekit keeps its files in (EDGEKIT_DATA_DIR, _CACHE_DIR, _CONFIG_DIR or the
    platform's default) is not a folder, or cannot be made."""


class OptionError(EdgekitError):
    """A command-line option has an impossible value (-n 0, --ctx -5, --temp -1, ...)."""


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


class HistorySchemaError(HistoryCorruptError):
    """The bias history is a readable database, but not of a schema this edgekit can extend."""


class ReferenceTextError(BiasError):
    """No real text to measure perplexity on was found on this machine."""


class OutputStreamError(EdgekitError):
    """Standard output cannot be written (a full disk, a closed pipe)."""


class ChatTemplateError(UnsupportedModelError):
    """A model's chat template failed, or went past the time or size limits it renders under."""


class ClosedOutputError(OutputStreamError):
    """The program reading standard output went away (`edgekit ... | head`): not worth a word."""

    exit_code = 141  # 128 + SIGPIPE, what a shell reports for a process killed by the pipe
