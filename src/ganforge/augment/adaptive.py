"""Augment: the policies applied to D's inputs with probability p per image and policy, p fixed or adaptive.

Adaptive p (ADA, Karras et al. 2020, section 3): D overfits when its outputs on real training images drift
positive, so r_t = E[sign(D(x_real))] over the last `interval` training steps is compared with a target (0.6 in ADA);
p moves up when r_t is above it and down when below, by (images since the last adjustment) / (speed_kimg x 1000),
so that it can cross [0, 1] in speed_kimg thousand images. The images are counted on the schedule clock
(training.budget), so under --minutes p moves as fast through the budget on any machine. Everything stays on the
device: no host synchronisation; with several processes the signs are summed over them before each adjustment,
so every rank holds the same p.

Why both real and generated images, in both phases, and differentiable (Zhao et al. 2020, section 3.2): with
only the reals augmented, D learns that augmented images are real and G is pushed to produce augmented-looking
images (the augmentations "leak"); augmenting G's output without a gradient through the augmentation leaves G
with no signal. ADA shows that augmentations applied with p < ~0.8 do not leak even where they are not
invertible, which is why the adaptive p stays useful for larger data.
"""
from __future__ import annotations

import torch

from ..errors import GanforgeError
from ..utils import distributed as dist
from ..utils.rng import rand_local
from .policies import AUGMENTATIONS

Tensor = torch.Tensor


class Augment:
    def __init__(self, policy: list[str], p: float, adaptive: bool, target: float, speed_kimg: float,
                 interval: int, device: torch.device):
        self.names = list(policy)
        self.policies = [AUGMENTATIONS.get(n) for n in policy]
        self.adaptive, self.target, self.speed_kimg, self.interval = adaptive, target, speed_kimg, interval
        self.p = torch.tensor(0.0 if adaptive else p, device=device)  # a device tensor: read without a sync
        self.signs = torch.zeros(2, device=device, dtype=torch.float64)  # [sum of sign(D(x_real)), count]
        self.last_clock = 0  # the schedule clock at the last adjustment
        self.always = not adaptive and p >= 1.0

    def __call__(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        """x [B, C, H, W] in model range -> each policy applied to each image with probability p."""
        for pol in self.policies:
            u = rand_local((x.shape[0], pol.n_random + 1), gen, x.device)  # [B, 1 + n]: the coin, the parameters
            y = pol.fn(x, u[:, 1:])
            x = y if self.always else torch.where((u[:, 0] < self.p)[:, None, None, None], y, x)
        return x

    def observe(self, real_logits: Tensor) -> None:
        """D's logits on (augmented) real images of one D step: the overfitting signal, accumulated."""
        if self.adaptive:
            rl = real_logits.detach().float()
            self.signs += torch.stack([rl.sign().sum(), torch.tensor(rl.numel(), device=rl.device)]).double()

    def adjust(self, clock: int) -> None:
        """Move p by the sign of r_t - target (every `interval` training steps; the caller counts them)."""
        if not self.adaptive:
            return
        dist.all_reduce_sum(self.signs)
        rt = self.signs[0] / self.signs[1].clamp(min=1)
        step = (clock - self.last_clock) / (self.speed_kimg * 1000.0)
        self.p.add_((torch.sign(rt - self.target) * step).to(self.p.dtype)).clamp_(0.0, 1.0)
        self.signs.zero_()
        self.last_clock = clock

    def state_dict(self) -> dict:
        return {"p": self.p.detach().cpu(), "signs": self.signs.cpu(), "last_clock": self.last_clock}

    def load_state_dict(self, s: dict) -> None:
        self.p.copy_(s["p"])
        self.signs.copy_(s["signs"])
        self.last_clock = int(s["last_clock"])


def build_augment(cfg, kind: str, device: torch.device) -> Augment | None:
    """The Augment the config asks for (cfg: the whole Config), or None when augment.policy is empty."""
    a = cfg.augment
    if not a.policy:
        return None
    if kind != "image":
        raise GanforgeError(f"augment.policy: {', '.join(a.policy)} augment images; this data is {kind}s: "
                            "set augment.policy=[]")
    if cfg.model.encoder:
        raise GanforgeError("augment.policy: not supported with model.encoder (D judges (x, z) pairs, and an "
                            "augmented x no longer matches its z); set augment.policy=[] or model.encoder=false")
    return Augment(a.policy, a.p, a.adaptive, a.target, a.speed_kimg, a.interval, device)
