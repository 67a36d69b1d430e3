"""edgekit: run language models well on small machines.

This package is the headless core. It must stay cheap to import: no torch, textual or llama_cpp at
module level (a test checks this), so that `edgekit --help` is instant on a Raspberry Pi.
"""

__version__ = "0.1.0"
