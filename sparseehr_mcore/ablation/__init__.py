"""The dense-prefix ablation (the paper's appendix Table 4): the same architecture with D = 0, 2, 4, 8
dense leading layers, trained side by side in one process on the same data.

`config.py` (what to run), `runner.py` (build, train round-robin, validate), `memory.py` (peak memory
of one step, per variant), `timing.py` (ratios of alternating steps), `report.py` (JSON, Markdown
table, plot). The command line is `tools/ablate_dense_prefix.py`.
"""
