"""The names of the training statistics in a tick record (log.jsonl, TensorBoard) and how to show them.

The objective reports statistics by name (`Stats.add("loss_d", value)`); the progress line, the log and the
report read them by name. A statistic that is not listed here still flows everywhere: it is logged, shown on
the progress line as `name value` and plotted in the report under "Other statistics". Listing it here only
gives it a short label, a format and a place in an existing figure. No torch: the report imports this.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatInfo:
    label: str            # short label on the progress line
    fmt: str              # format spec for the progress line
    doc: str              # what it is (the report's and the docs' wording)
    group: str = ""       # report figure it joins: losses | probability | logits | speed | noise; "" = its own
    progress: bool = True  # shown on the progress line


STATS: dict[str, StatInfo] = {
    "img_per_s": StatInfo("img/s", "{:.0f}", "real images shown to D per second of training", "speed"),
    "loss_d": StatInfo("D", "{:.3f}", "discriminator loss, adversarial part (mean over the tick's D steps)", "losses"),
    "loss_g": StatInfo("G", "{:.3f}", "generator loss (with the encoder's, under model.encoder)", "losses"),
    "penalty": StatInfo("pen", "{:.3g}", "weighted gradient penalties added to D's loss (GP, R1)", "losses",
                        progress=False),
    "d_real": StatInfo("D(x)", "{:.2f}", "mean sigmoid of D's logit on real data: D's probability that x is real",
                       "probability"),
    "d_fake": StatInfo("D(G(z))", "{:.2f}", "the same on generated data", "probability"),
    "d_real_logit": StatInfo("l(x)", "{:.2f}", "mean D logit on real data", "logits"),
    "d_fake_logit": StatInfo("l(G(z))", "{:.2f}", "mean D logit on generated data", "logits"),
    "noise_std": StatInfo("noise", "{:.3f}", "instance-noise std at the tick (train.noise_std schedule)", "noise"),
    "r1": StatInfo("R1", "{:.3g}", "E||grad D(x)||^2 on real data, unweighted (on the steps it is computed)",
                   progress=False),
    "aug_p": StatInfo("p", "{:.3f}", "augmentation probability p (augment.*; adaptive: ADA's p)", "augment"),
    "d_real_sign": StatInfo("r_t", "{:.2f}", "E[sign D(x_real)]: ADA's overfitting signal (1: D is sure of every "
                            "real image)", "logits"),
    "d_fake_sign": StatInfo("s(G(z))", "{:.2f}", "E[sign D(G(z))]: the same on generated data", "logits",
                            progress=False),
    "r2": StatInfo("R2", "{:.3g}", "E||grad D(G(z))||^2 on generated data, unweighted", progress=False),
    "latent_mse": StatInfo("|E(G(z))-z|", "{:.3f}", "mean |E(G(z)) - z|^2 per coordinate (loss.latent_weight)",
                           "encoder"),
    "cycle_mse": StatInfo("|G(E(x))-x|", "{:.4f}", "mean |G(E(x)) - x|^2 per value on real data (loss.cycle_weight)",
                          "encoder"),
}

# Keys of a tick record that are bookkeeping, not statistics.
RECORD_KEYS = ("event", "tick", "kimg", "nimg", "time_s", "sched_kimg", "precision", "metrics")


def info(name: str) -> StatInfo:
    """How to show statistic `name` (a default for names not listed in STATS)."""
    return STATS.get(name) or StatInfo(name, "{:.4g}", name)


def statistics_of(record: dict) -> list[str]:
    """The statistic names in a tick record, listed ones first (in STATS order), then the others sorted."""
    names = [k for k, v in record.items() if k not in RECORD_KEYS and isinstance(v, (int, float))
             and not isinstance(v, bool)]
    known = [k for k in STATS if k in names]
    return known + sorted(k for k in names if k not in STATS)


def progress_text(record: dict) -> str:
    """One line of a tick record for the progress display: `img/s 123  D 0.612  G 1.23 ...  metric values`."""
    parts = []
    names = statistics_of(record)
    for k in names:
        inf = info(k)
        if not inf.progress or (inf.group == "logits" and "d_real" in names):
            continue  # logits are shown only when D's outputs are no probabilities
        parts.append(f"{inf.label} {inf.fmt.format(record[k])}")
    for vals in (record.get("metrics") or {}).values():
        for k, v in (vals.items() if isinstance(vals, dict) else ()):
            parts.append(f"{k} {v:.4g}")
    return "  ".join(parts)
