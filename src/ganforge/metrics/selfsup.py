"""Self-supervised domain features: a small CNN trained on the real images themselves, without labels.

Where neither labels (the domain classifier) nor the Inception weights exist - a folder of the user's own images
on a machine without internet - the metrics still need a feature space that sees the domain. This one is learned
from the real images with SimCLR's contrastive objective (Chen et al. 2020, "A Simple Framework for Contrastive
Learning of Visual Representations"): two random augmentations of each image (crop and resize, flip, brightness /
contrast, and for colour images saturation and grey) must find each other among the other images of the batch
(NT-Xent loss, temperature `TEMPERATURE`). The features are the 256-d backbone output before the projection head
(SimCLR's finding: the head discards what the augmentations change, the backbone keeps it).

Every image is resized to `WORK` x `WORK` first (bilinear, antialiased when shrinking; the aspect ratio is not
kept), so one recipe serves 8x8 digits and 256x256 photos alike, grey and RGB, at the same cost: a Fashion-MNIST
sized set trains in a few minutes on one CPU thread. Training is deterministic given the seed on a given machine
(CPU training runs on one intra-op thread, as the domain classifier's); the caller's global RNG is untouched.
The weights are cached as `<cache>/selfsup/<key>.safetensors` with `<key>.json`, the key made from `data_key`,
the SHA-256 of the images and the recipe, so another dataset or preprocessing never reuses a network.

When the data have labels, the JSON records a k-nearest-neighbour accuracy of the features on held-out images
(labels are never used in training): a check that the space separates what matters, stamped in the protocol.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import GanforgeError
from ..utils.device import bf16_native
from .features import cached_network, digest, safe_name, tensor_sha256

ARCH = "ganforge-selfsup-cnn-v1"
FEATURE_DIM = 256
WORK = 32             # every image is resized to WORK x WORK before the network
MAX_TRAIN = 20_000    # images drawn by the seed for training (a tenth of them held out for the kNN check)
STEPS = 400           # optimiser steps of BATCH pairs
BATCH = 128
LR = 2e-3
TEMPERATURE = 0.2
KNN = 20
MIN_IMAGES = 8
CROP_MIN = 0.25       # the smallest crop, as a share of the image's area


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SelfSupNet(nn.Module):
    """Image in [-1, 1] [N, C, WORK, WORK] -> features [N, 256]; `project` maps them into the contrastive space."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_block(channels, 32), nn.MaxPool2d(2),        # 16
            *_block(32, 64), nn.MaxPool2d(2),              # 8
            *_block(64, 128), nn.MaxPool2d(2),             # 4
            *_block(128, FEATURE_DIM), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # [N, 256]
        )
        self.head = nn.Sequential(nn.Linear(FEATURE_DIM, FEATURE_DIM, bias=False), nn.BatchNorm1d(FEATURE_DIM),
                                  nn.ReLU(), nn.Linear(FEATURE_DIM, 128))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def to_work(x: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> float [N, C, WORK, WORK] in [-1, 1] (bilinear; antialiased when shrinking)."""
    y = x.float() / 127.5 - 1
    if tuple(y.shape[2:]) != (WORK, WORK):
        y = F.interpolate(y, size=(WORK, WORK), mode="bilinear", align_corners=False,
                          antialias=min(y.shape[2:]) > WORK)
    return y


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random view of each image of a batch [N, C, WORK, WORK] in [-1, 1] (SimCLR's augmentations, batched)."""
    n, c = x.shape[:2]
    u = torch.rand(n, 8, generator=g)
    area = CROP_MIN + (1 - CROP_MIN) * u[:, 0]            # crop area CROP_MIN-100% of the image
    logr = (u[:, 1] - 0.5) * 2 * math.log(4 / 3)          # aspect 3/4 .. 4/3
    sw, sh = (area * logr.exp()).sqrt().clamp(max=1), (area / logr.exp()).sqrt().clamp(max=1)
    tx, ty = (2 * u[:, 2] - 1) * (1 - sw), (2 * u[:, 3] - 1) * (1 - sh)   # the crop stays inside the image
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw * flip, tx, sh, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = (0.6 + 0.8 * u[:, 5]).view(n, 1, 1, 1)
    bright = (0.8 * u[:, 6] - 0.4).view(n, 1, 1, 1)
    mean = y.mean((1, 2, 3), keepdim=True)
    y = (y - mean) * contrast + mean + bright
    if c == 3:  # colour: saturation jitter, and a grey view one time in five
        grey = y.mean(1, keepdim=True)
        sat = torch.where(u[:, 7] < 0.2, 0.0, 0.4 + 1.2 * torch.rand(n, generator=g)).view(n, 1, 1, 1)
        y = grey + (y - grey) * sat
    return y.clamp(-1, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's loss for N positive pairs (z1[i], z2[i]) [N, D]: each view must pick its partner among 2N - 1."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)            # [2N, D]
    sim = z @ z.T / temperature
    n = len(z1)
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    return F.cross_entropy(sim, target)


def check_images(x: torch.Tensor) -> None:
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise GanforgeError(f"self-supervised features need uint8 images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    if len(x) < MIN_IMAGES:
        raise GanforgeError(f"self-supervised features need at least {MIN_IMAGES} real images to learn from, got "
                            f"{len(x)}")


def _recipe(x: torch.Tensor, seed: int) -> dict:
    return dict(arch=ARCH, data_sha256=tensor_sha256(x), seed=seed, work=WORK, max_train=MAX_TRAIN, steps=STEPS,
                batch=BATCH, lr=LR, temperature=TEMPERATURE)


def train_selfsup(x: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0,
                  device: str | torch.device = "cpu", steps: int | None = None) -> tuple[SelfSupNet, dict]:
    """Train a SelfSupNet on uint8 images [N, C, H, W] (labels only for the kNN check) -> (net on CPU, info)."""
    check_images(x)
    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)   # deterministic and, for this small net on a shared CPU, faster (domain.py)
    try:
        return _train(x, labels, seed, device, steps or STEPS)
    finally:
        torch.set_num_threads(threads)


def _train(x: torch.Tensor, labels: torch.Tensor | None, seed: int, device: torch.device,
           steps: int) -> tuple[SelfSupNet, dict]:
    t0 = time.time()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:MAX_TRAIN]
    n_val = len(idx) // 10 if labels is not None and len(idx) > 10 * KNN else 0
    val, tr = idx[:n_val], idx[n_val:]
    xs = to_work(x[tr])                                             # [n, C, WORK, WORK]
    batch = min(BATCH, len(tr))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SelfSupNet(x.shape[1])
    net = net.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    use_bf16 = bf16_native(device)
    perm, pos = torch.randperm(len(tr), generator=g), 0
    for _ in range(steps):
        if pos + batch > len(tr):
            perm, pos = torch.randperm(len(tr), generator=g), 0
        b = xs[perm[pos:pos + batch]]
        pos += batch
        views = torch.cat([augment(b, g), augment(b, g)]).to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            z = net.head(net(views))
        loss = nt_xent(z[:batch], z[batch:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net = net.cpu().to(memory_format=torch.contiguous_format).eval().requires_grad_(False)
    info = dict(n_train=len(tr), steps=steps, final_loss=round(float(loss.detach()), 4),
                seconds=round(time.time() - t0, 2))
    if n_val:
        info["knn_accuracy"] = knn_accuracy(selfsup_features(net, x[tr]), labels[tr], selfsup_features(net, x[val]),
                                            labels[val])
        info["knn_k"] = KNN
    return net, info


def knn_accuracy(f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor,
                 k: int = KNN) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine similarity, majority, ties to the lowest class)."""
    a, b = F.normalize(f_train, dim=1), F.normalize(f_test, dim=1)
    hits = 0
    for s in range(0, len(b), 1024):
        nn_idx = (b[s:s + 1024] @ a.T).topk(k, dim=1).indices             # [r, k]
        votes = F.one_hot(y_train.long()[nn_idx], int(y_train.max()) + 1).sum(1)
        hits += int((votes.argmax(1) == y_test[s:s + 1024].long()).sum())
    return hits / max(1, len(b))


def selfsup_network(x: torch.Tensor, labels: torch.Tensor | None = None, data_key: str = "", seed: int = 0,
                    cache: Path | None = None, device: str | torch.device = "cpu") -> tuple[SelfSupNet, dict]:
    """The cached network for these images and the recipe (trained on a miss) -> (net, json info incl. key)."""
    check_images(x)
    recipe = _recipe(x, seed)
    key = f"{safe_name(data_key)}-{digest(recipe)[:20]}"
    return cached_network(cache, "selfsup", key, lambda: SelfSupNet(x.shape[1]),
                          lambda: train_selfsup(x, labels, seed, device, recipe["steps"]),
                          dict(recipe, data_key=data_key, key=key, channels=x.shape[1], size=list(x.shape[2:])))


@torch.inference_mode()
def selfsup_features(net: SelfSupNet, x: torch.Tensor, batch_size: int = 512,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 images [N, C, H, W] -> features float32 [N, 256] on CPU (fp32 inference, eval-mode BatchNorm)."""
    net = net.to(device)
    out = [net(to_work(x[s:s + batch_size]).to(device)).float().cpu() for s in range(0, len(x), batch_size)]
    net.cpu()
    return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM)
