"""ganforge: train, evaluate and sample Generative Adversarial Networks.

    import ganforge
    run_dir = ganforge.train("digits", overrides=["train.kimg=50"])
    g = ganforge.load(run_dir)
    images = g.sample(16, seed=0)          # uint8 [16, H, W, C]

The public API is this module. Importing it is cheap (no torch): each function imports what it needs.
"""
from .config import Config
from .errors import GanforgeError
from .version import __version__


def train(config=None, **kwargs):
    """Train a GAN from a preset name, YAML path, dict or Config; returns the run directory (see training.loop)."""
    from .training.loop import train as _train

    return _train(config, **kwargs)


def resolve_config(source=None, overrides=None) -> Config:
    """Preset name, YAML path, dict or Config (+ `--set`-style overrides) -> a validated Config."""
    from .components import resolve

    return resolve(source, overrides)


def load(run_dir, device: str = "cpu"):
    """Load a run's exported generator: `.sample(n, seed=...)`, `.interpolate(...)`, `.project(x)`."""
    from .sampling import load as _load

    return _load(run_dir, device)


def sample(run_dir, n: int, seed: int = 0, truncation=None):
    """n samples from a run's generator (uint8 [n, H, W, C] images, float32 [n, D] vectors, or n strings of text)."""
    return load(run_dir).sample(n, seed=seed, truncation=truncation)


def evaluate(target, metrics=None, **kwargs):
    """Metrics of a run directory or a samples file against its dataset (see ganforge.evaluation)."""
    from .evaluation import evaluate_target

    return evaluate_target(target, metrics, **kwargs)


__all__ = ["Config", "GanforgeError", "evaluate", "load", "resolve_config", "sample", "train", "__version__"]
