"""`ganforge eval`: metrics of a run's generator (or a samples .npz) against its dataset, with protocols."""
from __future__ import annotations

import copy
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from .components import from_artefact, validate
from .config import Config, apply_overrides, check_seed
from .data import Data, build_dataset, cache_dir, data_key
from .data.text import heldout_part, read_text
from .errors import GanforgeError
from .metrics import METRICS, evaluate
from .metrics import dinov2
from .metrics.inception import weights_available
from .sampling import load
from .training.checkpoint import CKPT_RE, load_checkpoint
from .utils.device import pick_device
from .utils.files import append_jsonl, read_array
from .utils.images import save_image_grid, to_chw


OFFLINE = ["ssl_fd", "ssl_kid", "ssl_pr", "c2st", "memorization"]  # need neither labels nor downloaded weights


def default_metrics(data: Data, conditional: bool = False) -> list[str]:
    """A sensible set per dataset: PacGAN mode metrics for toy sets; domain metrics for labelled images (and the
    class-conditional ones for a conditional generator); for unlabelled images the self-supervised ones, the
    two-sample test and the memorisation check; plus the Inception metrics when the FID weights are available."""
    if data.info.get("metrics"):  # a dataset made for one benchmark says how it is measured
        return list(data.info["metrics"])
    if data.kind == "text":
        return text_default_metrics(data)
    if data.kind == "vector":
        return ["toy"] if data.name in ("ring", "grid") else ["pr"]
    names = []
    if data.labels is not None:
        names += ["domain_fd", "class_kl"] + (["class_acc", "class_fd"] if conditional else [])
    else:
        names += OFFLINE
    if weights_available():
        names += ["fid", "kid", "pr"]
    if dinov2.weights_available():
        names += ["fd_dinov2"]
    return [n for n in names if n in METRICS]


def text_default_metrics(data: Data) -> list[str]:
    """Text: quality against held-out lines (BLEU) read with diversity (self-BLEU, uniqueness), as Caccia et al.
    2020 ask; novelty; the held-out valid rate where lines are short enough for a novel sample to be a real line
    (character tokens: words); the length histogram. Without a held-out split, BLEU and valid are left out."""
    held = data.info.get("split") == "train" and bool(data.info.get("heldout"))
    chars = data.info.get("metric_tokens") == "chars"
    names = (["bleu"] if held else []) + ["self_bleu", "novelty", "uniqueness"] + (
        ["valid"] if held and chars else []) + ["length_tv"]
    return [n for n in names if n in METRICS]


def heldout_data(cfg: Config, data: Data) -> Data | None:
    """The real items a generator trained on `data` never saw: the dataset's test split when it was trained on the
    train split of a dataset that has one (IDX sets, CIFAR, text sets with data.heldout > 0); None otherwise."""
    if data.kind == "text":
        return heldout_part(cfg.data, data)
    if data.info.get("split") != "train" or data.kind != "image":
        return None
    held = copy.deepcopy(cfg.data)
    held.split, held.max_items = "test", 0
    try:
        out = build_dataset(held)
    except GanforgeError:
        return None   # the test files are not there: the metrics say they ran without held-out data
    return out if out.shape == data.shape else None


def read_text_samples(path: Path) -> list[str]:
    """Text samples as `ganforge sample` writes them: a .txt file (one sample per line, white space runs -> one
    space, ends trimmed, as the text datasets read lines) or a .npz holding `texts` (unicode [N])."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if "texts" not in z.files:
                    raise GanforgeError(f"{path}: text samples are an array named 'texts' (unicode [N]), as "
                                        f"`ganforge sample RUN --out FILE.npz` writes; it holds {z.files or 'none'}")
                t = z["texts"]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise GanforgeError(f"{path}: cannot read it as a numpy file ({e})") from None
        if t.dtype.kind != "U" or t.ndim != 1:
            raise GanforgeError(f"{path}: 'texts' must be unicode strings [N], got {t.dtype} {list(t.shape)}")
        return [" ".join(str(s).split()) for s in t]
    rows = read_text(path).split("\n")
    if rows and rows[-1] == "":
        rows.pop()   # the newline that ends the last line
    return [" ".join(s.split()) for s in rows]


def _is_text_npz(path: Path) -> bool:
    try:
        z = np.load(path, allow_pickle=False)   # a .npy under a .npz name loads as a plain array
    except (OSError, ValueError, EOFError, KeyError, AttributeError, zipfile.BadZipFile):
        return False
    if not isinstance(z, np.lib.npyio.NpzFile):
        return False
    with z:
        return "texts" in z.files


def save_closest_pairs(result, fake: torch.Tensor, train: torch.Tensor, out_dir: Path) -> list[Path]:
    """The memorization metric's closest generated / training pairs as PNG grids (each pair side by side: the
    sample, then its nearest training image), one per space -> the paths written."""
    paths = []
    for space, pairs in result.protocol.get("closest_pairs", {}).items():
        if not pairs or fake.ndim != 4:
            continue
        idx_f = torch.tensor([p[0] for p in pairs])
        idx_t = torch.tensor([p[1] for p in pairs])
        both = torch.stack([fake[idx_f], train[idx_t]], 1).flatten(0, 1)       # [2P, C, H, W]: sample, nearest
        paths.append(save_image_grid(both.permute(0, 2, 3, 1).numpy(), out_dir / f"closest-pairs-{space}.png",
                                     cols=8))
    return paths


def _fake_from_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The samples in a .npz as `ganforge sample` writes it: `images` uint8 [N, H, W, C] or `samples` [N, D], and
    their `labels` when a conditional generator wrote them."""
    labels = None
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.ndarray):
            with z:
                if "labels" in z.files:
                    lab = z["labels"]
                    if lab.dtype.kind in "iu" and lab.ndim == 1:
                        labels = torch.from_numpy(lab.astype(np.int64))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        pass  # read_array below says what is wrong
    try:
        key, x = read_array(path, ("images", "samples"), only_named=True)
    except GanforgeError as e:
        if "holds arrays" in str(e):
            raise GanforgeError(f"{path}: expected an array named 'images' (uint8 [N, H, W, C]) or 'samples' "
                                f"([N, D]); {str(e).split(': ', 1)[1]}") from None
        raise
    if key == "images" or (key is None and x.ndim == 4):
        if x.dtype != np.uint8 or x.ndim != 4:
            raise GanforgeError(f"{path}: 'images' must be uint8 [N, H, W, C], got {x.dtype} {list(x.shape)}")
        return to_chw(torch.from_numpy(x)).contiguous(), labels
    if x.ndim != 2:
        raise GanforgeError(f"{path}: 'samples' must be [N, D], got shape {list(x.shape)}")
    with np.errstate(over="ignore"):
        out = torch.from_numpy(x.astype(np.float32))
    if not torch.isfinite(out).all():
        raise GanforgeError(f"{path}: 'samples' holds NaN or infinite values (or values too large for float32)")
    return out, labels


def evaluate_target(target, metrics: list[str] | None = None, *, n: int | None = None, seed: int = 0,
                    device: str = "cpu", data_overrides: list[str] | None = None) -> dict:
    """RUN_DIR (its exported generator), RUN_DIR/checkpoints/ckpt-<N>.pt (that checkpoint's G_ema), SAMPLES.npz or
    (text) SAMPLES.txt -> {metric name: MetricResult}.

    For a run or a checkpoint the dataset comes from the run's config; for samples give it with data_overrides
    (e.g. ["data.name=fashion"], ["data.name=words"]). A text run's generator is sampled as strings; its held-out
    lines come from the run's dataset config. A run's results (a checkpoint's too) are appended to
    RUN_DIR/metrics.jsonl with their protocol.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise GanforgeError(f"--n: the number of samples must be a whole number >= 1, got {n!r}")
    check_seed(seed, "--seed")
    pick_device(device, "--device")
    p = Path(target)
    run_dir = None
    if p.is_dir():
        run_dir = p
        g = load(p, device=device)
        cfg = from_artefact(g.meta["config"], f"{p}/generator/config.json")
    elif p.suffix == ".pt":
        g, run_dir = _checkpoint_generator(p, device)
        cfg = from_artefact(g.meta["config"], f"{run_dir}/generator/config.json")
    elif p.suffix in (".npz", ".txt") and p.is_file():
        g = None
        cfg = Config()
        if not any(o.startswith("data.name=") for o in data_overrides or []):
            raise GanforgeError(f"{p}: say which dataset the samples are compared with, e.g. --set data.name="
                                f"{'words' if p.suffix == '.txt' else 'fashion'}")
    else:
        raise GanforgeError(f"{p}: expected a run directory, a run's checkpoint (RUN_DIR/checkpoints/ckpt-<N>.pt), "
                            "a samples .npz file or (text) a samples .txt file")
    bad = [o for o in data_overrides or [] if not o.startswith(("data.", "metrics."))]
    if bad:
        raise GanforgeError(f"--set {bad[0]}: eval takes only data.* keys (which data to compare with) and "
                            "metrics.<name>.<option> keys")
    apply_overrides(cfg, data_overrides or [])
    validate(cfg)
    data = build_dataset(cfg.data)
    names = metrics or default_metrics(data, conditional=g is not None and g.conditional)
    text_samples = g is None and (p.suffix == ".txt" or _is_text_npz(p))
    if g is None and text_samples and data.kind != "text":
        raise GanforgeError(f"{p}: text samples are compared with text data, but {cfg.data.name!r} is {data.kind} "
                            "data; --set data.name=words, sentences, or text with data.path=FILE")
    if g is None and not text_samples and data.kind == "text":
        raise GanforgeError(f"{p}: {cfg.data.name!r} is text data; give its samples as a .txt file (one per line) "
                            "or a .npz holding 'texts', as `ganforge sample RUN --out FILE` writes")
    if data.kind == "text":
        return _evaluate_text(g, p, run_dir, cfg, data, names, n, seed, device)
    n_fake = n or data.info.get("eval_n") or (2500 if data.kind == "vector" else min(10000, len(data)))
    labels = None
    if g is not None:
        labels = g.labels_for(n_fake, None, seed)
        fake = g.sample_tensor(n_fake, seed=seed, labels=labels)
    else:
        fake, labels = _fake_from_npz(p)
        fake, labels = fake[:n_fake], None if labels is None else labels[:n_fake]
    if tuple(fake.shape[1:]) != tuple(data.shape):
        raise GanforgeError(f"samples have shape {list(fake.shape[1:])} per item but the dataset "
                            f"{cfg.data.name} has {list(data.shape)}; check --set data.resolution/channels")
    heldout = heldout_data(cfg, data) if any(m in ("memorization", "c2st") for m in names) else None
    results = evaluate(fake, data, names, n=n, seed=seed, device=device, data_key=data_key(cfg.data),
                       options=cfg.metrics, fake_labels=labels, heldout=heldout, cache=cache_dir(cfg.data.cache_dir))
    if run_dir is not None and "memorization" in results:
        for path in save_closest_pairs(results["memorization"], fake, data.x, run_dir / "eval"):
            results["memorization"].protocol.setdefault("grids", []).append(str(path))
    if run_dir is not None:
        _append_results(run_dir, g, results)
    return results


def _checkpoint_generator(p: Path, device: str):
    """RUN_DIR/checkpoints/ckpt-<N>.pt -> (the run's exported generator carrying that checkpoint's G_ema, RUN_DIR):
    what the run would have exported at that tick, so every checkpoint a run keeps can be scored afterwards."""
    if p.parent.name != "checkpoints" or not CKPT_RE.match(p.name):
        raise GanforgeError(f"{p}: a checkpoint is evaluated inside its run, as RUN_DIR/checkpoints/ckpt-<N>.pt "
                            "(the run's generator/ folder describes the network)")
    state = load_checkpoint(p)
    run_dir = p.parent.parent
    g = load(run_dir, device=device)
    try:
        g.net.load_state_dict(state["G_ema"])
    except (RuntimeError, KeyError) as e:
        raise GanforgeError(f"{p}: its generator weights do not match {run_dir}/generator (a checkpoint of another "
                            f"run or model copied here?): {type(e).__name__}") from None
    g.meta = {**g.meta, "nimg": int(state["nimg"])}
    return g, run_dir


def _append_results(run_dir: Path, g, results: dict) -> None:
    kimg = g.meta.get("nimg", 0) / 1000
    for name, r in results.items():
        append_jsonl(run_dir / "metrics.jsonl", {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "kimg": kimg,
                                                 "name": name, "values": r.values, "protocol": r.protocol})


TEXT_EVAL_N = 1000   # text: samples scored by default (BLEU costs ~35 us per sample-reference pair; the MLE curve
                     # of benchmarks/text.py scores 1,000 per point)


def _evaluate_text(g, p: Path, run_dir: Path | None, cfg: Config, data: Data, names: list[str], n: int | None,
                   seed: int, device: str) -> dict:
    """Text: the generator's samples as strings (or the file's lines) against the training and held-out lines."""
    n_fake = n or TEXT_EVAL_N
    fake = g.sample(n_fake, seed=seed) if g is not None else read_text_samples(p)[:n_fake]
    if not fake:
        raise GanforgeError(f"{p}: no samples to evaluate")
    heldout = heldout_data(cfg, data)
    results = evaluate(fake, data, names, seed=seed, device=device, data_key=data_key(cfg.data),
                       options=cfg.metrics, heldout=heldout, cache=cache_dir(cfg.data.cache_dir))
    if run_dir is not None:
        _append_results(run_dir, g, results)
    return results
