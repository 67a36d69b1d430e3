"""Issue 34, item 5: chat templates from model files render in a sandbox with time and size
limits (edgekit.templates). A nested loop hung chat mode; `'x' * 4000000000` reached 11.9 GB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from edgekit.errors import ChatTemplateError
from edgekit.templates import render_chat_template

CHAT = {"messages": [{"role": "user", "content": "call 5551234567 now"}]}
HOSTILE = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "a loop over a long string": "{% for c in 'x' * 900000 %}{% for d in 'y' * 900000 %}"
    "{% endfor %}{% endfor %}",
    "string repeat": "{{ 'x' * 4000000000 }}",
    "list repeat": "{{ ([1] * 100000) * 100000 }}",
    "power": "{{ 10 ** 100000000 }}",
    "center filter": "{{ 'x'|center(4000000000) }}",
    "ljust method": "{{ 'x'.ljust(4000000000) }}",
    "percent width": "{{ '%4000000000s' % 'x' }}",
    "precision": "{{ '%.9999999f' % 1.0 }}",
    "format method": "{{ '{:>4000000000}'.format('x') }}",
    "format filter": "{{ '%9999999s'|format('x') }}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "huge output": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "attribute escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "mutation": "{% set x = [] %}{{ x.append(1) }}",
}


@pytest.mark.parametrize("source", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_templates_are_stopped_quickly(source: str) -> None:
    start = time.monotonic()
    with pytest.raises(ChatTemplateError):
        render_chat_template(source, CHAT, seconds=1.0)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("name", ["string repeat", "doubling with ~", "format method"])
def test_hostile_templates_stay_small(name: str) -> None:
    """Measured in a fresh process: its own peak (VmHWM), not ru_maxrss, which survives exec and
    would report this test run's."""
    code = textwrap.dedent(
        f"""
        import json
        from edgekit.errors import ChatTemplateError
        from edgekit.metrics import peak_rss_bytes
        from edgekit.templates import render_chat_template
        try:
            render_chat_template({HOSTILE[name]!r}, {{}}, seconds=1.0)
        except ChatTemplateError:
            pass
        print(json.dumps(peak_rss_bytes()))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) < 800 * 2**20, "peak RSS in bytes"


def test_a_real_template_renders_as_transformers_would() -> None:
    source = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('no system role') }}{% endif %}<start_of_turn>"
        "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] | trim }}"
        "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    context = {**CHAT, "bos_token": "<bos>", "add_generation_prompt": True}
    got = render_chat_template(source, context)
    assert (
        got == "<bos><start_of_turn>user\ncall 5551234567 now<end_of_turn>\n<start_of_turn>model\n"
    )
    with pytest.raises(ChatTemplateError, match="no system role"):
        render_chat_template(source, {"messages": [{"role": "system", "content": "x"}]})


def test_the_trace_function_of_the_caller_is_restored() -> None:
    before = sys.gettrace()
    with pytest.raises(ChatTemplateError):
        render_chat_template(HOSTILE["nested loops"], {}, seconds=0.2)
    assert sys.gettrace() is before
