"""Shared infrastructure below every other layer: files, images, plots, RNG, distributed helpers, statistics.

Nothing here imports another ganforge module except `ganforge.errors`; each module imports only what it needs,
so that e.g. `ganforge.report` (files, statistics' names) runs without torch.
"""
