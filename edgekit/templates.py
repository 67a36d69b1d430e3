"""Chat templates from model files, rendered as the untrusted programs they are.

A Jinja template ships inside a downloaded model (tokenizer_config.json, chat_template.jinja, a
GGUF's tokenizer.chat_template), and edgekit renders it on every chat turn, later for every
request the server takes. jinja2's ImmutableSandboxedEnvironment already stops attribute tricks
and caps `range()`; it does not stop a template from looping for hours (nested loops) or from
asking for gigabytes in one expression (`'x' * 4000000000`). So here, on top of the sandbox:

- every arithmetic operator is checked *before* it runs: a string, list or number it would make
  past MAX_ITEMS is refused, never allocated;
- every call (filters and methods) with a count or width past MAX_ITEMS is refused
  (`'x'|center(10**10)`, `'x'.ljust(...)`), and every call's result is measured;
- the rendered text is streamed and stops at MAX_OUTPUT_CHARS;
- a trace function checks a deadline on each line the template's code runs, so a loop is
  stopped after `seconds`, in this thread, without a child process.

Same settings as transformers' `apply_chat_template` (trim_blocks, lstrip_blocks, loopcontrols,
raise_exception), so prompts match. jinja2 loads only when a template is rendered.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from edgekit.errors import ChatTemplateError

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_ITEMS = 1_000_000  # characters of one string, items of one list, digits-worth of a number
MAX_OUTPUT_CHARS = 4_000_000  # a rendered prompt; far past any context window
MAX_EXTRA_RSS = 256 << 20  # memory a rendering may add to the process
DEFAULT_SECONDS = 2.0
# A width or precision of 7+ digits in a format string: '%10000000s', '{:>10000000}', '%.9999999f'.
_HUGE_PERCENT_FIELD = re.compile(r"%[^a-zA-Z%]*\d{7,}")
_HUGE_BRACE_FIELD = re.compile(r"\{[^{}]*:[^{}]*\d{7,}")


class _Limit(Exception):
    """Raised inside the template when a limit is crossed; becomes a TemplateError."""


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3  # about its decimal digits
    return 0


def _check_size(value: Any, what: str) -> Any:
    if _size(value) > MAX_ITEMS:
        raise _Limit(f"{what} would be larger than {MAX_ITEMS:,} items")
    return value


def _check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse before computing: `'x' * 4e9` would allocate first and fail after."""
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            repeated = _size(seq) and isinstance(n, int) and not isinstance(seq, int)
            if repeated and n > 0 and _size(seq) * n > MAX_ITEMS:
                raise _Limit(f"repeating a sequence {n:,} times exceeds {MAX_ITEMS:,} items")
    powers = op == "**" and isinstance(left, int) and isinstance(right, int)
    if powers and right > 0 and max(abs(left), 2).bit_length() * right > 3 * MAX_ITEMS:
        raise _Limit("a power that large is not computed")
    if op == "%" and isinstance(left, str):
        _check_format(left)
    if op == "+" and _size(left) + _size(right) > MAX_ITEMS and not isinstance(left, int):
        raise _Limit(f"a concatenation exceeds {MAX_ITEMS:,} items")


def _check_format(fmt: str) -> None:
    if _HUGE_PERCENT_FIELD.search(fmt) or _HUGE_BRACE_FIELD.search(fmt):
        raise _Limit("a format width that large is not used")


def _check_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Counts and widths (center, ljust, indent, wordwrap, truncate, ...) within MAX_ITEMS."""
    for value in (*args, *kwargs.values()):
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and abs(value) > MAX_ITEMS:
            raise _Limit(f"an argument of {value:,} is past the limit of {MAX_ITEMS:,}")


def _environment() -> ImmutableSandboxedEnvironment:
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class LimitedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

        def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
            _check_binop(operator_, left, right)
            return _check_size(super().call_binop(context, operator_, left, right), "a value")

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            if isinstance(getattr(value, "__self__", None), str):
                _check_format(value.__self__)  # '{:>4000000000}'.format(x)
            return super().wrap_str_format(value)

        def call(self, context: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
            _check_args(args, kwargs)
            return _check_size(super().call(context, obj, *args, **kwargs), "a call's result")

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = LimitedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    env.filters = {name: _limited(name, f) for name, f in env.filters.items()}
    return env


def _limited(name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
    """Filters are called directly by the compiled template, not through `call`."""
    value_at = 1 if hasattr(filter_, "jinja_pass_arg") else 0  # after the environment/context

    def checked(*args: Any, **kwargs: Any) -> Any:
        if name == "format" and len(args) > value_at and isinstance(args[value_at], str):
            _check_format(args[value_at])
        _check_args(args[value_at + 1 :], kwargs)
        return _check_size(filter_(*args, **kwargs), "a filter's result")

    for attr in ("jinja_pass_arg", "__name__", "__doc__"):
        if hasattr(filter_, attr):
            setattr(checked, attr, getattr(filter_, attr))
    return checked


def _limit_tracer(deadline: float) -> Callable[[FrameType, str, Any], Any]:
    """Checks the clock on every line the template's code runs, and the memory now and then:
    `~` joins strings without passing through the environment, so doubling one in a loop is
    caught by what it costs."""
    import psutil

    process = psutil.Process()
    ceiling = process.memory_info().rss + MAX_EXTRA_RSS
    events = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal events
        events += 1
        if time.monotonic() > deadline:
            raise _Limit("it ran past its time limit")
        if events % 32 == 0 and process.memory_info().rss > ceiling:
            raise _Limit(f"it took more than {MAX_EXTRA_RSS >> 20} MiB of memory")
        return tracer

    return tracer


def render_chat_template(
    source: str,
    context: Mapping[str, Any],
    *,
    name: str = "the chat template",
    seconds: float = DEFAULT_SECONDS,
) -> str:
    """Render `source` with `context` in the sandbox, within `seconds` and the size limits."""
    import jinja2

    hint = "Give a prompt with -p to run it without a chat template, or fix the template."
    if len(source) > MAX_OUTPUT_CHARS:
        raise ChatTemplateError(f"{name} is {len(source):,} characters long", hint=hint)
    previous = sys.gettrace()
    sys.settrace(_limit_tracer(time.monotonic() + seconds))
    try:
        template = _environment().from_string(source)
        pieces, n = [], 0
        for piece in template.generate(**context):
            n += len(piece)
            if n > MAX_OUTPUT_CHARS:
                raise _Limit(f"its output passed {MAX_OUTPUT_CHARS:,} characters")
            pieces.append(piece)
        return "".join(pieces)
    except _Limit as e:
        raise ChatTemplateError(f"{name} was stopped: {e}", hint=hint) from None
    except (jinja2.TemplateError, RecursionError, MemoryError, ArithmeticError) as e:
        raise ChatTemplateError(f"{name} failed: {e}", hint=hint) from None
    except (TypeError, ValueError, LookupError, AttributeError) as e:
        raise ChatTemplateError(f"{name} failed: {type(e).__name__}: {e}", hint=hint) from None
    finally:
        sys.settrace(previous)
