"""Register an adversarial loss of your own and train with it: here a "soft hinge" (softplus in place of relu).

    python examples/custom_loss.py                        # digits, 60 kimg: a minute or two on a laptop CPU
    python examples/custom_loss.py --tiny --out /tmp/ex   # seconds: a smoke test (or GANFORGE_EXAMPLE_TINY=1)

A loss is a pair of pure functions of the discriminator's logits; ganforge's objective calls backward() and adds
the penalties. Registering it makes `loss.name=soft-hinge` valid everywhere a loss name is (presets, --set, YAML),
in this process: import the module that registers it before calling ganforge. Its own option, `margin`, declared
as a dataclass, becomes the config key `loss.margin` (type-checked, saved in config.yaml, listed by
`ganforge --import MODULE presets --components`); the objective passes it to the functions as a keyword argument.
"""
import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import ganforge
from ganforge.losses import LOSSES, AdversarialLoss

TINY = ["data.resolution=8", "model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch=16",
        "train.kimg=0.384", "train.tick_kimg=0.128", "train.ema_kimg=0.1", "train.grid_size=16",
        "train.metrics=[]"]  # no per-tick classifier metrics in a smoke run



@dataclass
class SoftHingeOptions:
    margin: float = 1.0   # where D's soft hinge bends: softplus(margin - l_real) + softplus(margin + l_fake)


SOFT_HINGE = AdversarialLoss(
    d=lambda real, fake, s, margin: F.softplus(margin - real).mean() + F.softplus(margin + fake).mean(),  # scalar
    g=lambda real, fake, margin: -fake.mean(),   # G sees D's logits on real and generated data [N]; uses fake
    default_gp=0.0,      # the gradient-penalty weight used when loss.gp_weight is -1
    smoothing=False,     # label smoothing is not defined without labels
    probability=False,   # sigmoid(logit) is not a probability here, so log.jsonl has no D(x), D(G(z))
)
if "soft-hinge" not in LOSSES:
    LOSSES.register("soft-hinge", options=SoftHingeOptions,
                    doc="softplus in place of relu in the hinge loss (an example)")(SOFT_HINGE)


def check_signs(loss: AdversarialLoss, margin: float = 1.0) -> None:
    """D's loss must fall as real logits rise or fake logits fall; G's loss must fall as fake logits rise."""
    lo, hi = torch.full((4,), -1.0), torch.full((4,), 1.0)
    assert loss.d(hi, lo, 0.0, margin=margin) < loss.d(lo, lo, 0.0, margin=margin)
    assert loss.d(hi, lo, 0.0, margin=margin) < loss.d(hi, hi, 0.0, margin=margin)
    assert loss.g(None, hi, margin=margin) < loss.g(None, lo, margin=margin)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kimg", type=float, default=60, help="training length in thousands of images")
    p.add_argument("--out", default="runs/example-custom-loss", help="folder for the run")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("GANFORGE_EXAMPLE_TINY") == "1",
                   help="a budget of seconds, for a smoke test")
    a = p.parse_args()
    check_signs(SOFT_HINGE)

    # The hinge family is usually paired with spectral norm in D and beta1 = 0 (SNGAN, Miyato et al. 2018).
    overrides = ["loss.name=soft-hinge", "loss.margin=0.5", "model.d_norm=spectral", "optim.g_betas=[0,0.9]",
                 "optim.d_betas=[0,0.9]"]
    overrides += TINY if a.tiny else [f"train.kimg={a.kimg}", f"train.tick_kimg={a.kimg / 4}"]
    run_dir = ganforge.train("digits", overrides=overrides, out=Path(a.out) / "run", progress=not a.tiny)
    print(f"run directory: {run_dir} (loss.name=soft-hinge, loss.margin=0.5, see {run_dir / 'config.yaml'})")
    print(f"samples: {ganforge.sample(run_dir, 16, seed=0).shape}")


if __name__ == "__main__":
    try:
        main()
    except ganforge.GanforgeError as e:
        sys.exit(f"error: {e}")
