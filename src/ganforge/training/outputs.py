"""What a run writes besides its checkpoints: config.yaml, the tick records (sinks), a fixed-latent sample
grid (images), scatter plot (2-D vectors) or text file (text) per tick, and the progress display. Rank 0 alone
writes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config, to_yaml
from ..data import Data, from_model_range, n_classes_of
from ..data.text import tokenizer_of
from ..models import sample_prior
from ..sampling import noise_seeded
from ..utils import distributed as dist
from ..utils.files import atomic_write
from ..utils.images import image_grid, save_image_grid, to_hwc
from ..utils.plots import save_scatter
from ..utils.rng import cpu_generator
from .progress import Progress
from .rundir import CONFIG_HEADER
from .sinks import open_sinks

GRID_SEED_OFFSET = 2024   # the per-tick grid's latents: seed + this, the same at every tick and on resume
TEXT_SAMPLES = 32         # text: decoded samples written per tick (samples/tick-*.txt)


@dataclass
class Outputs:
    run_dir: Path
    data: Data
    grid_z: torch.Tensor       # [grid_size, z_dim] on the training device
    sinks: list
    progress: Progress
    grid_c: torch.Tensor | None = None  # conditional: the grid's labels, class i % K in column i % K
    heldout: Data | None = None         # text tick metrics: the held-out lines (BLEU references, valid rate)

    @classmethod
    def open(cls, run_dir: Path, cfg: Config, data: Data, device: torch.device, start_nimg: int,
             progress: bool, resumed_from: str | None) -> "Outputs":
        t, main = cfg.train, dist.is_main()
        grid_z = sample_prior(t.grid_size, cfg.model.z_dim, cfg.model.prior,
                              cpu_generator(t.seed + GRID_SEED_OFFSET)).to(device)
        k = n_classes_of(data) if cfg.model.conditional else 0
        grid_c = (torch.arange(t.grid_size) % k).to(device) if k else None
        out = cls(run_dir, data, grid_z, open_sinks(run_dir, t.tensorboard, start_nimg) if main else [],
                  Progress(t.kimg, start_nimg / 1000, enabled=progress and main), grid_c)
        if main:
            (run_dir / "samples").mkdir(parents=True, exist_ok=True)
            atomic_write(run_dir / "config.yaml", CONFIG_HEADER + to_yaml(cfg))
            if resumed_from is not None:
                out.event({"event": "resume", "kimg": start_nimg / 1000, "from": resumed_from})
        return out

    def event(self, record: dict) -> None:
        for s in self.sinks:
            s.event(record)

    def tick(self, record: dict, grid: np.ndarray | None) -> None:
        for s in self.sinks:
            s.tick(record, grid)
        self.progress.tick(record["nimg"] / 1000, record, record.get("sched_kimg"))

    @torch.no_grad()
    def samples(self, G_ema, tick: int, nimg: int, prior: str) -> np.ndarray | list[str] | None:
        """Write samples/tick-NNNNN-kimg-KKKKKK.KK.png (.txt for text); returns the image grid [H, W, C], the text
        samples (list of TEXT_SAMPLES strings), or None (vectors)."""
        c = self.grid_c
        if self.data.kind == "text":  # the same latents and Gumbel noise at every tick
            with noise_seeded(G_ema, GRID_SEED_OFFSET, self.grid_z.device):
                ids = from_model_range(G_ema(self.grid_z[:TEXT_SAMPLES]), "text").cpu()
            lines = tokenizer_of(self.data).decode(ids)
            path = self.run_dir / "samples" / f"tick-{tick:05d}-kimg-{nimg / 1000:09.2f}.txt"
            atomic_write(path, "".join(line + "\n" for line in lines))
            return lines
        out = from_model_range(G_ema(self.grid_z) if c is None else G_ema(self.grid_z, c), self.data.kind).cpu()
        path = self.run_dir / "samples" / f"tick-{tick:05d}-kimg-{nimg / 1000:09.2f}.png"
        if self.data.kind == "image":
            hwc = to_hwc(out).numpy()
            cols = int(c.max()) + 1 if c is not None and int(c.max()) < 32 else None  # a column per class
            save_image_grid(hwc, path, cols=cols)
            grid = np.asarray(image_grid(hwc, cols))
            return grid[..., None] if grid.ndim == 2 else grid
        z = sample_prior(2500, self.grid_z.shape[1], prior, cpu_generator(7)).to(self.grid_z.device)
        if c is None:
            many = from_model_range(G_ema(z), self.data.kind).cpu().numpy()
        else:
            labels = (torch.arange(2500) % (int(c.max()) + 1)).to(z.device)
            many = from_model_range(G_ema(z, labels), self.data.kind).cpu().numpy()
        real = self.data.x[torch.randperm(len(self.data), generator=cpu_generator(0))[:2500]].numpy()
        save_scatter(many, real, path, title=f"{self.data.name}  {nimg / 1000:.1f} kimg")
        return None

    def close(self) -> None:
        self.progress.close()
        for s in self.sinks:
            s.close()

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
