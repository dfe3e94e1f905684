"""Training throughput: ganforge's DCGAN vs a pytorch/examples-style loop, side by side in one process.

Both train the same network: the pytorch/examples `dcgan/main.py` DCGAN at 64x64x3, nz=100, ngf=ndf=64
(3,576,704 + 2,765,568 parameters; checked below). The reference is written the way that script writes it
(its own nn.Sequential G and D with a Sigmoid, BCELoss, fp32, a DataLoader with shuffling, `.item()` on
every step). It is given a head start: its images are already float tensors in memory (no JPEG decoding,
no resizing). main.py's DataLoader has 2 workers (its `--workers` default), which on a small machine compete
with the training threads for cores; `--ref-workers 0,2` (the default) measures both, and every ratio is
taken against the FASTER of the references, so no ratio profits from a slow reference. ganforge runs through
its real code path, `training.state.setup()` + `training.step.train_step()`, the very functions `ganforge train`
runs.
Measurements alternate between the loops, several rounds; the table shows medians. Absolute numbers on a
shared machine are noise: read the ratios.

    python benchmarks/throughput.py                          # CPU, batches 64,256
    python benchmarks/throughput.py --device cuda --batches 64,256,1024
    python benchmarks/throughput.py --quick                  # a tiny smoke run (CI)

Variants (`--variants`): `fast` = train.precision=auto (bf16 autocast where the hardware has it) +
channels_last; `fast-native` = fast with oneDNN's own convolution weight gradients everywhere
(train.conv_weight_grad=native; `fast` uses the matrix product where the rule says so, on a CPU with AMX);
`compiled` = fast + train.compile; `fp32` = the same loop in plain fp32, to separate the
loop's own savings from those of the number format. Every variant has train.reuse_fakes=true: the generator
step trains on the discriminator step's fakes, as main.py does. MFU = (FLOPs of one step, counted by
FlopCounterMode) x steps/s / (matmul peak). The peak is measured here with one big torch.matmul in each precision
ganforge trains in (fp32, bf16), and the FASTEST counts: on a CPU without native bf16 (an Ice Lake) torch
emulates bf16 at a fraction of fp32's speed, and an emulated peak would make every MFU look impossibly high.
The ceiling column is the ratio ganforge's step would reach at 100% of that peak: no kernel tuning exceeds it
on that machine. The peak is measured again after every round, and each row divides by the best measurement up to
it: one short measurement can land in a slow moment of a shared machine, and a low peak inflates every MFU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from ganforge.config import Config  # noqa: E402
from ganforge.data import Data  # noqa: E402
from ganforge.training.device import resolve_precision  # noqa: E402
from ganforge.training.state import setup  # noqa: E402
from ganforge.training.step import train_step  # noqa: E402
from ganforge.utils.device import cpu_description  # noqa: E402
from ganforge.utils.stats import Stats  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# The reference: pytorch/examples dcgan/main.py (BSD-3-Clause), same structure and names.


class Generator(nn.Module):
    def __init__(self, nz, ngf, nc):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ndf, nc):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, input):
        output = self.main(input)
        return output.view(-1, 1).squeeze(1)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class Reference:
    """The body of main.py's `for i, data in enumerate(dataloader, 0):` loop, one call per iteration."""

    def __init__(self, images_u8: torch.Tensor, batch: int, nz: int, ngf: int, ndf: int, device, workers: int):
        self.device, self.nz = device, nz
        dataset = torch.utils.data.TensorDataset(images_u8.float().div(127.5).sub(1))  # ToTensor + Normalize(.5, .5)
        # shuffle=True, as main.py, over an "epoch" of many passes: our in-memory set is small (a few batches), and
        # real epochs are long, so DataLoader workers must not be restarted every few steps
        shuffle = torch.utils.data.RandomSampler(dataset, num_samples=10_000 * len(dataset))
        self.dataloader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=shuffle, num_workers=workers,
                                                      drop_last=True)
        self.netG = Generator(nz, ngf, 3).to(device)
        self.netG.apply(weights_init)
        self.netD = Discriminator(ndf, 3).to(device)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.it = iter(self.dataloader)
        self.line = ""

    def step(self):
        try:
            data = next(self.it)
        except StopIteration:  # next epoch
            self.it = iter(self.dataloader)
            data = next(self.it)
        real_label, fake_label = 1, 0
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        self.netD.zero_grad()
        real_cpu = data[0].to(self.device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=self.device)
        output = self.netD(real_cpu)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        # train with fake
        noise = torch.randn(batch_size, self.nz, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(fake_label)
        output = self.netD(fake.detach())
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        self.netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = self.netD(fake)
        errG = self.criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        # main.py prints this line every iteration; we format it (same host reads) but keep the table clean
        self.line = ('Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f'
                     % (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))


# ---------------------------------------------------------------------------------------------------
# ganforge, through the loop's own setup() and train_step()


def ganforge_config(batch: int, nz: int, ngf: int, ndf: int, device: str, precision: str, channels_last: bool,
                    compile_: bool, conv_weight_grad: str = "auto") -> Config:
    cfg = Config()
    m, o, t = cfg.model, cfg.optim, cfg.train
    m.arch, m.z_dim, m.g_width, m.d_width, m.g_norm, m.d_norm = "dcgan", nz, ngf, ndf, "batch", "batch"
    cfg.loss.name = "nonsaturating"  # = BCE on D(G(z)) against "real" labels, as main.py
    o.name, o.g_lr, o.d_lr, o.g_betas, o.d_betas = "adam", 2e-4, 2e-4, [0.5, 0.999], [0.5, 0.999]
    t.batch, t.device, t.precision, t.channels_last, t.compile = batch, device, precision, channels_last, compile_
    t.conv_weight_grad = conv_weight_grad
    t.reuse_fakes = True  # G's step on the D step's fakes, one G forward per step: main.py's own algorithm
    return cfg


class Ganforge:
    def __init__(self, images_u8: torch.Tensor, cfg: Config, device: torch.device):
        data = Data(x=images_u8, kind="image", name="synthetic")
        self.ctx = setup(cfg, data, device)
        self.stats = Stats()

    def step(self):
        train_step(self.ctx, self.stats)


VARIANTS = {  # name -> (train.precision, train.channels_last, train.compile, train.conv_weight_grad)
    "fast": ("auto", True, False, "auto"),
    "fast-native": ("auto", True, False, "native"),
    "compiled": ("auto", True, True, "auto"),
    "fp32": ("fp32", False, False, "auto"),
}

# ---------------------------------------------------------------------------------------------------
# measurement


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def img_per_s(loop, batch: int, seconds: float, device: torch.device) -> float:
    """Run whole steps for at least `seconds` (and at least 2 steps); the clock stops after the device is done."""
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        loop.step()
        n += 1
    sync(device)
    return n * batch / (time.perf_counter() - t0)


def step_flops(loop) -> int:
    with FlopCounterMode(display=False) as fc:
        loop.step()
    return fc.get_total_flops()


PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # the precisions ganforge trains in


def matmul_peak(device: torch.device, n: int, dtype: torch.dtype = torch.bfloat16) -> float:
    """Measured matmul FLOP/s in `dtype` (best of a few) with one big square torch.matmul."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(4):
        sync(device)
        t0 = time.perf_counter()
        reps = 10 if device.type == "cuda" else 1
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, reps * 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def machine_peak(device: torch.device, n: int, measure=None) -> tuple[float, str, dict[str, float]]:
    """The fastest matmul this machine really has: (FLOP/s, its precision, every precision's FLOP/s). Each of
    PEAK_DTYPES is measured (`measure(device, n, dtype)`, default matmul_peak) and the best counts, so a CPU whose
    bf16 is emulated gets fp32's peak, one with AVX512-BF16 or AMX (or a GPU) bf16's."""
    measure = measure or matmul_peak
    peaks = {name: float(measure(device, n, dtype)) for name, dtype in PEAK_DTYPES.items()}
    best = max(peaks, key=peaks.get)
    return peaks[best], best, peaks


def profile_step(loop, device: torch.device, peak: float, steps: int = 5) -> None:
    """Share of the step's time per op kind; FLOP/s of the convolutions (forward and backward, FlopCounterMode)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            loop.step()
        sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: -getattr(e, attr))
    total = sum(getattr(e, attr) for e in events)
    conv_us = sum(getattr(e, attr) for e in events if "conv" in e.key.lower())
    conv_flops = step_flops(loop) * steps  # a dense DCGAN step: its FLOPs are its convolutions'
    print(f"  profile ({steps} steps): convolutions take {100 * conv_us / total:.0f}% of the step's "
          f"{'device' if device.type == 'cuda' else 'CPU'} time and run at {conv_flops / (conv_us * 1e-6) / 1e12:.2f} "
          f"TFLOP/s = {100 * conv_flops / (conv_us * 1e-6) / peak:.0f}% of the matmul peak; top ops:")
    for e in events[:8]:
        print(f"    {e.key[:48]:<48} {100 * getattr(e, attr) / total:5.1f}%")


def check_no_host_sync(loop, steps: int = 3) -> str:
    """CUDA only: run steps with torch's sync debug mode set to error: any host synchronisation raises."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            loop.step()
        return "none"
    except RuntimeError as e:
        return f"FOUND: {str(e).splitlines()[0][:120]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batches", default="64,256", help="comma-separated batch sizes")
    p.add_argument("--seconds", type=float, default=8.0, help="wall time per measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternations reference / ganforge per batch size")
    p.add_argument("--variants", default="fast,fp32", help="ganforge variants, any of: fast (precision=auto + "
                   "channels_last), fast-native (fast, oneDNN's weight gradients), compiled (fast + train.compile), "
                   "fp32 (the same loop in plain fp32)")
    p.add_argument("--ref-workers", default="0,2", help="comma-separated DataLoader worker counts of the reference "
                   "loops, each measured (main.py's default is 2); ratios are against the fastest")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--quick", action="store_true", help="tiny widths, one short round: a smoke test")
    p.add_argument("--profile", action="store_true", help="also print where the first variant's step spends its "
                   "time (torch.profiler, 5 steps per batch size) and the FLOP/s its convolutions reach")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = True  # main.py sets it (and so does ganforge's setup(): train.cudnn_benchmark)
    nz, ngf, ndf = (8, 4, 4) if a.quick else (100, 64, 64)
    batches = [8] if a.quick else [int(b) for b in a.batches.split(",")]
    seconds, rounds, warmup = (0.05, 1, 1) if a.quick else (a.seconds, a.rounds, 3)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    ref_workers = [int(w) for w in a.ref_workers.split(",")]
    refs = [f"ref{w}" for w in ref_workers]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants: unknown variant {v!r} (choose from {', '.join(VARIANTS)})")

    if not variants:
        p.error(f"--variants: name at least one of {', '.join(VARIANTS)}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    peak_n = 256 if a.quick else (8192 if device.type == "cuda" else 2048)
    peak, peak_name, peaks = machine_peak(device, peak_n)
    n_peaks = 1
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"matmul peaks measured: {', '.join(f'{k} {v / 1e12:.3f}' for k, v in peaks.items())} TFLOP/s; "
          f"MFU and the ceiling use the fastest, {peak_name} ({peak / 1e12:.3f} TFLOP/s)")
    print(f"network: pytorch/examples DCGAN 64x64x3, nz={nz}, ngf={ngf}, ndf={ndf}; {seconds:g} s per measurement, "
          f"{rounds} rounds alternating, medians")

    labels = {v: f"ganforge[{resolve_precision(VARIANTS[v][0], device, 'image')}"
                 f"{'+cl' if VARIANTS[v][1] else ''}{'+compile' if VARIANTS[v][2] else ''}"
                 f"{'+native-wgrad' if VARIANTS[v][3] == 'native' else ''}]" for v in variants}
    head = f"{'batch':>6}" + "".join(f" {f'reference, {w} workers':>21}" for w in ref_workers) + f" {'ref MFU':>8}"
    for v in variants:
        head += f" | {labels[v]:>26} {'x ref':>6} {'MFU':>6}"
    head += f" | {'GFLOP/img':>9} {'ceiling x ref':>13} {'host syncs in step':>20}"
    print()
    print(head)
    print("-" * len(head), flush=True)
    for batch in batches:
        torch.manual_seed(0)
        images = torch.randint(0, 256, (max(4 * batch, 256), 3, 64, 64), dtype=torch.uint8)  # synthetic data
        loops = {r: Reference(images, batch, nz, ngf, ndf, device, w) for r, w in zip(refs, ref_workers)}
        for v in variants:
            loops[v] = Ganforge(images, ganforge_config(batch, nz, ngf, ndf, a.device, *VARIANTS[v]), device)
        ref = loops[refs[0]]
        for v in variants:  # the same network on both sides
            counts = [sum(q.numel() for q in m.parameters()) for m in (ref.netG, ref.netD, loops[v].ctx.G,
                                                                        loops[v].ctx.D)]
            assert counts[:2] == counts[2:], f"architectures differ: {counts}"
        for lp in loops.values():
            for _ in range(warmup):
                lp.step()
        # FLOPs of one step, counted eagerly (the same network and step in every ganforge variant)
        eager = Ganforge(images, ganforge_config(batch, nz, ngf, ndf, a.device, "fp32", False, False), device)
        ref_flops = step_flops(ref)
        flops = {**{r: ref_flops for r in refs}, **{v: step_flops(eager) for v in variants}}
        del eager
        syncs = check_no_host_sync(loops[variants[0]]) if device.type == "cuda" and variants else "n/a (CPU)"
        speed: dict[str, list[float]] = {k: [] for k in loops}
        ratio: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for name in refs:
                speed[name].append(img_per_s(loops[name], batch, seconds, device))
            r = max(speed[name][-1] for name in refs)  # this round's fastest reference
            for v in variants:
                s = img_per_s(loops[v], batch, seconds, device)
                speed[v].append(s)
                ratio[v].append(s / r)
            # the peak again, between the loops' measurements: one measurement of a fraction of a second can
            # land in a slow moment of a shared machine (a 2-core VM once measured 0.22 TFLOP/s at the start
            # and 0.30-0.32 in every later run), and a low peak inflates every MFU; the best so far counts
            again = machine_peak(device, peak_n)[2]
            peaks = {k: max(peaks[k], again[k]) for k in peaks}
            peak_name = max(peaks, key=peaks.get)
            peak, n_peaks = peaks[peak_name], n_peaks + 1
        med = {k: statistics.median(x) for k, x in speed.items()}
        mfu = {k: flops[k] / batch * med[k] / peak for k in loops}
        best = max(refs, key=med.get)
        line = f"{batch:>6}" + "".join(f" {med[r]:>21.1f}" for r in refs) + f" {100 * mfu[best]:>7.2f}%"
        for v in variants:
            line += f" | {med[v]:>26.1f} {statistics.median(ratio[v]):>5.2f}x {100 * mfu[v]:>5.2f}%"
        fl = flops[variants[0]] / batch / 1e9 if variants else float("nan")
        ceiling = peak / (fl * 1e9) / med[best]  # ganforge's step at 100% of the matmul peak, x reference
        print(line + f" | {fl:>9.3f} {ceiling:>12.2f}x {syncs:>20}", flush=True)
        if a.profile and variants:
            profile_step(loops[variants[0]], device, peak)
        for v in variants:
            fell = [n for n in ("G", "D") if getattr(getattr(loops[v].ctx.objective, n), "failed", False)]
            if fell:
                print(f"       note: {labels[v]}: torch.compile failed for {', '.join(fell)}, which ran eagerly")
        del loops
    print(f"\nMFU: model FLOPs of one training step (FlopCounterMode) x steps/s / the measured {peak_name} matmul peak"
          " (ref MFU: the fastest reference); ratios: medians of per-round ratios to that round's fastest reference;"
          "\nceiling: the ratio ganforge's step (its FLOPs per image) would reach running at 100% of that peak."
          f"\nThe peak is re-measured after every round and each row divides by the best measured up to it; the best of"
          f" all {n_peaks} measurements: {', '.join(f'{k} {v / 1e12:.3f}' for k, v in peaks.items())} TFLOP/s.")


if __name__ == "__main__":
    main()
