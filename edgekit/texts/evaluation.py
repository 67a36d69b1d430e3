"""Evaluation text: real human-written prose that this project did not write, read at run time.

The default is the GNU General Public License v3 as Debian ships it in /usr/share/common-licenses
(package base-files, present on every Debian system): ~5,600 words of English legal prose written
by the Free Software Foundation. Elsewhere, CPython's own LICENSE.txt (the history of Python and
its licenses, written by the PSF) is used. `--eval-file` gives any other text.
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EvalError

DEFAULT_SOURCES = (
    (Path("/usr/share/common-licenses/GPL-3"), "GPL-3 text from Debian base-files (FSF)"),
    (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt", "CPython LICENSE.txt (PSF)"),
)


@dataclass(frozen=True)
class EvalText:
    text: str
    source: str


def load_eval_text(path: str | Path | None = None) -> EvalText:
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EvalError(f"cannot read the evaluation text {p}: {e}") from None
        if not text.strip():
            raise EvalError(f"the evaluation text {p} is empty")
        return EvalText(text, str(p))
    for candidate, label in DEFAULT_SOURCES:
        if candidate.is_file():
            return EvalText(candidate.read_text(encoding="utf-8", errors="replace"), label)
    raise EvalError(
        "no evaluation text found on this system",
        hint="Pass a plain-text file of human-written prose with --eval-file.",
    )
