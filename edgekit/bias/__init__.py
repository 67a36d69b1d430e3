"""Bias: probe scores per category, their history, and the layer-wise feedback loop.

probes (pair_data, qa_data)  the suite and its calibration / held-out split
scoring, suite, metrics      llama.cpp log-probabilities -> bias scores
hidden, steering, cvec_file  hidden states -> per-layer control vectors -> llama.cpp's GGUF
calibrate, mitigate          constraint weights for a model; the strength search
loop, guard, lexicon,        the run-time feedback loop and its output scorers
probe_scorer
history, api, model_id       SQLite history and what the dashboard reads

Nothing here imports llama_cpp at module level; the CLI imports these lazily.
"""
