"""Domain features: a small CNN trained on the dataset's own labels, for data where Inception is wrong.

Digits at 16x16 or Fashion-MNIST at 28x28 are far from ImageNet; a classifier of the domain gives features that
see what matters there (the LeNet-FID / Frechet Classifier Distance idea, reference/metrics.md §8). Its
penultimate features (128-d) give a Frechet distance ("domain_fd"); its predicted classes give a class-coverage
KL ("class_kl") against the real label distribution (the Stacked-MNIST mode-KL idea, reference/benchmarks.md §2.3).

Training is deterministic given the seed on a given machine (CPU training uses one thread): at most `MAX_TRAIN`
images drawn by the seed (a tenth of them held out for the accuracy in the JSON), Adam, bf16 autocast, a fixed number of
steps. The global RNG is left untouched. The weights are cached as `<cache>/domain/<key>.safetensors` with
`<key>.json` (accuracy, seed, epochs, ...), the key made from `data_key` + SHA-256 of the images and labels +
the training recipe, so a different dataset or preprocessing never reuses a classifier.
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

ARCH = "ganforge-domain-cnn-v1"
FEATURE_DIM = 128
MAX_TRAIN = 20_000     # images (3 epochs of 18k at 28x28: 49 s on one thread of a busy 2-core CPU)
EPOCHS = 3
MIN_STEPS = 400        # small sets (digits: 1,797 images) get more epochs, up to MAX_EPOCHS
MAX_EPOCHS = 50
BATCH = 128
LR = 1e-3


class DomainNet(nn.Module):
    """uint8-range image [N, C, H, W] (H, W >= 4) -> (features [N, 128], logits [N, K])."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),   # H/2
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),         # H/4
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # [N, 128]
            nn.Linear(128, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x.float() / 127.5 - 1)
        return f, self.head(f)


def n_classes_of(labels: torch.Tensor, class_names: list[str] | None) -> int:
    return len(class_names) if class_names else int(labels.max()) + 1


def check_labelled(x: torch.Tensor, labels: torch.Tensor | None) -> None:
    if labels is None:
        raise GanforgeError("domain metrics (domain_fd, class_kl) need image data with class labels; this set has none")
    if x.dtype != torch.uint8 or x.ndim != 4 or min(x.shape[2:]) < 4:
        raise GanforgeError(f"domain metrics need uint8 images [N, C, H, W] with H, W >= 4, got {x.dtype} "
                            f"{tuple(x.shape)}")


def _recipe(x: torch.Tensor, labels: torch.Tensor, n_classes: int, seed: int, min_steps: int | None = None) -> dict:
    return dict(arch=ARCH, data_sha256=tensor_sha256(x), labels_sha256=tensor_sha256(labels), n_classes=n_classes,
                seed=seed, max_train=MAX_TRAIN, epochs=EPOCHS, min_steps=min_steps or MIN_STEPS, batch=BATCH, lr=LR)


def train_domain_classifier(x: torch.Tensor, labels: torch.Tensor, n_classes: int, seed: int = 0,
                            device: str | torch.device = "cpu", min_steps: int | None = None) -> tuple[DomainNet, dict]:
    """Train a DomainNet on uint8 images [N, C, H, W] and int labels [N] -> (net in eval mode on CPU, info).

    On CPU it runs on one intra-op thread: the result then does not depend on the caller's thread count, and on a
    shared CPU the small ops of this net are ~10x faster than with 2 threads waiting for each other (measured
    here: digits 7 s vs 69 s, 20k Fashion-sized images x 3 epochs 49 s vs 222 s at load 7 on 2 cores).
    """
    check_labelled(x, labels)
    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _train(x, labels, n_classes, seed, device, min_steps)
    finally:
        torch.set_num_threads(threads)


def _train(x: torch.Tensor, labels: torch.Tensor, n_classes: int, seed: int,
           device: torch.device, min_steps: int | None = None) -> tuple[DomainNet, dict]:
    t0 = time.time()
    g = torch.Generator().manual_seed(seed)
    val, tr = _split(len(x), g)
    n_val = len(val)
    steps_per_epoch = math.ceil(len(tr) / BATCH)
    epochs = min(MAX_EPOCHS, max(EPOCHS, math.ceil((min_steps or MIN_STEPS) / steps_per_epoch)))
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        net = DomainNet(x.shape[1], n_classes)
    net = net.to(device, memory_format=torch.channels_last)  # channels_last + bf16: 2-4x faster on CPU here
    # bf16 only where the hardware has it: elsewhere (an AVX2-only EPYC) torch emulates it, and 3 epochs took
    # over 5 minutes instead of 47 s
    use_bf16 = bf16_native(device)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    xs, ys = x[tr], labels[tr].long()
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(tr), generator=g)
        for s in range(0, len(tr), BATCH):
            b = perm[s:s + BATCH]
            xb = xs[b].to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = F.cross_entropy(net(xb)[1].float(), ys[b].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net = net.cpu().to(memory_format=torch.contiguous_format).eval().requires_grad_(False)
    acc, per = _accuracy(net, x[val], labels[val], n_classes)
    info = dict(accuracy=acc, class_accuracy=per, n_train=len(tr), n_val=n_val, epochs=epochs,
                steps=epochs * steps_per_epoch, seconds=round(time.time() - t0, 2))
    return net, info


def _split(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's draw of at most MAX_TRAIN of n images -> (held-out tenth, training rest), as indices."""
    idx = torch.randperm(n, generator=g)[:MAX_TRAIN]
    return idx[:len(idx) // 10], idx[len(idx) // 10:]


def _accuracy(net: DomainNet, x: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[float, list]:
    """-> (accuracy, [accuracy on each class's images, None for a class with none]); nan when x is empty."""
    if not len(x):
        return float("nan"), [None] * n_classes
    y = labels.long().cpu()
    hit = (domain_features(net, x)["logits"].argmax(1) == y).double()
    return float(hit.mean()), [float(hit[y == c].mean()) if (y == c).any() else None for c in range(n_classes)]


def held_out_class_accuracy(net: DomainNet, x: torch.Tensor, labels: torch.Tensor, n_classes: int,
                            seed: int) -> list:
    """The per-class accuracy on the held-out images of the classifier trained with `seed` on (x, labels): for a
    cached classifier whose JSON predates `class_accuracy`."""
    val, _ = _split(len(x), torch.Generator().manual_seed(seed))
    return _accuracy(net, x[val], labels[val], n_classes)[1]


def domain_classifier(x: torch.Tensor, labels: torch.Tensor, n_classes: int, data_key: str = "", seed: int = 0,
                      cache: Path | None = None, device: str | torch.device = "cpu",
                      min_steps: int | None = None) -> tuple[DomainNet, dict]:
    """The cached classifier for this dataset and recipe (trained on a miss) -> (net, json info incl. protocol)."""
    check_labelled(x, labels)
    recipe = _recipe(x, labels, n_classes, seed, min_steps)
    key = f"{safe_name(data_key)}-{digest(recipe)[:20]}"
    return cached_network(cache, "domain", key, lambda: DomainNet(x.shape[1], n_classes),
                          lambda: train_domain_classifier(x, labels, n_classes, seed, device, min_steps),
                          dict(recipe, data_key=data_key, key=key, channels=x.shape[1], size=list(x.shape[2:])))


@torch.inference_mode()
def domain_features(net: DomainNet, x: torch.Tensor, batch_size: int = 256,
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """uint8 images [N, C, H, W] -> dict(feat [N, 128], logits [N, K]) float32 on CPU (fp32 inference)."""
    net = net.to(device)
    feats, logits = [], []
    for s in range(0, len(x), batch_size):
        f, lg = net(x[s:s + batch_size].to(device))
        feats.append(f.float().cpu())
        logits.append(lg.float().cpu())
    net.cpu()
    k = net.head.out_features
    return dict(feat=torch.cat(feats) if feats else torch.zeros(0, FEATURE_DIM),
                logits=torch.cat(logits) if logits else torch.zeros(0, k))


def class_kl(fake_logits: torch.Tensor, real_labels: torch.Tensor, n_classes: int) -> dict[str, float]:
    """KL(histogram of predicted fake classes || real label distribution) in nats, and the classes covered.

    The fake histogram counts argmax predictions (hard labels, as the Stacked-MNIST mode KL); terms with p = 0 are
    0; a predicted class absent from the real labels makes the KL infinite.
    """
    p = torch.bincount(fake_logits.argmax(1).cpu(), minlength=n_classes).double()
    p = p / p.sum()
    q = torch.bincount(real_labels.long().cpu(), minlength=n_classes).double()
    q = q / q.sum()
    m = p > 0
    kl = float((p[m] * (p[m].log() - q[m].log())).sum())
    return dict(class_kl=kl, classes_covered=int(m.sum()), n_classes=n_classes)
