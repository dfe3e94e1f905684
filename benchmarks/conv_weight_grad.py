"""Convolution weight gradients, layer by layer: oneDNN's kernel against one matrix product (train.conv_weight_grad).

For every convolution of a network (by default the 64x64 DCGAN of benchmarks/throughput.py; `--net fashion` for
the 28x28 DCGAN of the fashion presets) it times the weight gradient both ways on the layer's real shapes, in
each precision asked for, and prints which is faster and what the 'auto' rule would pick on this CPU. This is
the measurement the rule in src/ganforge/training/convgrad.py comes from; run it to check the rule on a CPU of
your own.

    python benchmarks/conv_weight_grad.py                        # DCGAN 64x64, batch 64, bf16 and fp32
    python benchmarks/conv_weight_grad.py --net fashion --batch 128 --dtypes bf16
    python benchmarks/conv_weight_grad.py --dtypes fp32 --passes    # + forward and input gradient, % of the peak

`--passes` adds a second table: each layer's three passes (forward, input gradient, weight gradient) with
PyTorch's own kernels, each as a share of the machine's matrix-multiplication peak (benchmarks/throughput.py's
measurement: the fastest precision this CPU really has). It tells which pass keeps a step from that peak.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ganforge.config import ModelConfig
from ganforge.models import build_models
from ganforge.training import convgrad
from ganforge.utils.device import cpu_description

NETS = {  # name -> (image shape, z_dim, width)
    "dcgan64": ((3, 64, 64), 100, 64),
    "fashion": ((1, 28, 28), 64, 64),
}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def layers(net: str) -> list[tuple[nn.Module, tuple[int, ...]]]:
    """(convolution, its input shape without the batch) for G and D of the named network."""
    shape, z, width = NETS[net]
    G, D = build_models(ModelConfig(arch="dcgan", z_dim=z, g_width=width, d_width=width, g_norm="batch",
                                    d_norm="batch"), shape, "image", 0)
    found = []
    hooks = [m.register_forward_hook(lambda m, i, o: found.append((m, tuple(i[0].shape[1:]))))
             for m in [*G.modules(), *D.modules()] if convgrad.eligible(m)]
    with torch.no_grad():
        G(torch.randn(2, z))
        D(torch.randn(2, *shape))
    for h in hooks:
        h.remove()
    return found


def timed(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


class Operands:
    """One layer's tensors at its real shapes (input x, weight w, output y, an output gradient dy), its passes with
    PyTorch's kernels, and its name for the tables."""

    def __init__(self, m: nn.Module, in_shape: tuple[int, ...], batch: int, dtype: torch.dtype, fmt):
        self.m, self.tr = m, isinstance(m, nn.ConvTranspose2d)
        self.x = torch.randn(batch, *in_shape).to(dtype).contiguous(memory_format=fmt)
        self.w = m.weight.detach().to(dtype)
        self.y = self.forward()
        self.dy = torch.randn_like(self.y).contiguous(memory_format=fmt)
        self.name = (f"{'convT' if self.tr else 'conv'} {in_shape[0]}->{self.w.shape[1 if self.tr else 0]} "
                     f"{in_shape[1]}x{in_shape[2]}->{self.y.shape[2]}x{self.y.shape[3]}")

    def forward(self) -> torch.Tensor:
        m = self.m
        return (torch.nn.functional.conv_transpose2d(self.x, self.w, None, m.stride, m.padding, m.output_padding)
                if self.tr else m._conv_forward(self.x, self.w, None))

    def backward(self, mask: tuple[bool, bool, bool]):
        m = self.m
        return torch.ops.aten.convolution_backward(self.dy, self.x, self.w, None, m.stride, m.padding, m.dilation,
                                                   self.tr, m.output_padding if self.tr else (0, 0), 1, mask)


def passes(net: str, batch: int, dtype: torch.dtype, fmt, repeats: int, peak: float, name: str) -> None:
    """Forward, input gradient and weight gradient of every layer with PyTorch's kernels, ms and % of `peak`."""
    print(f"{'dtype':>5} {'layer':>34} {'GFLOP':>7} {'forward ms':>11} {'%':>4} {'input grad ms':>14} {'%':>4} "
          f"{'weight grad ms':>15} {'%':>4}")
    total = [0.0, 0.0, 0.0]
    flops_all = 0
    for m, in_shape in layers(net):
        op = Operands(m, in_shape, batch, dtype, fmt)
        with FlopCounterMode(display=False) as fc:
            op.forward()
        flops = fc.get_total_flops()  # each backward pass computes as many products as the forward
        times = [timed(op.forward, repeats), timed(lambda: op.backward((True, False, False)), repeats),
                 timed(lambda: op.backward((False, True, False)), repeats)]
        total = [t + s for t, s in zip(total, times)]
        flops_all += flops
        cells = " ".join(f"{t * 1e3:>{wd}.2f} {100 * flops / t / peak:>4.0f}" for t, wd in zip(times, (11, 14, 15)))
        print(f"{name:>5} {op.name:>34} {flops / 1e9:>7.3f} {cells}")
    cells = " ".join(f"{t * 1e3:>{wd}.2f} {100 * flops_all / t / peak:>4.0f}" for t, wd in zip(total, (11, 14, 15)))
    print(f"{name:>5} {'all layers':>34} {flops_all / 1e9:>7.3f} {cells}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=list(NETS), default="dcgan64")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dtypes", default="bf16,fp32", help="comma-separated: bf16, fp32")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--nchw", action="store_true", help="contiguous NCHW tensors instead of channels_last")
    p.add_argument("--passes", action="store_true", help="also time each layer's forward, input gradient and "
                   "weight gradient with PyTorch's kernels, as shares of the machine's matmul peak")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    amx = convgrad.has_amx()
    fmt = torch.contiguous_format if a.nchw else torch.channels_last
    print(f"{cpu_description()}, torch {torch.__version__}, {torch.get_num_threads()} threads; net {a.net}, batch "
          f"{a.batch}, {'NCHW' if a.nchw else 'channels_last'}; times of one weight gradient, the mean of "
          f"{a.repeats} calls after one untimed")
    print(f"{'dtype':>5} {'layer':>34} {'positions':>9} {'kernel ms':>10} {'product ms':>11} {'faster':>8} "
          f"{'auto picks':>10}")
    for name in a.dtypes.split(","):
        dtype = DTYPES[name.strip()]
        total = {"kernel": 0.0, "product": 0.0, "auto": 0.0}
        for m, in_shape in layers(a.net):
            op = Operands(m, in_shape, a.batch, dtype, fmt)
            tr, x, dy = op.tr, op.x, op.dy
            kernel = timed(lambda: op.backward((False, True, False)), a.repeats)
            product = timed(lambda: convgrad.gemm_weight_grad(x, dy, tuple(op.w.shape), m.stride, m.padding, tr),
                            a.repeats)
            rows = x if tr else dy
            pos = rows.shape[2] * rows.shape[3]
            picks = "product" if convgrad.auto_picks_product(m, x, dtype, amx) else "kernel"
            total["kernel"] += kernel
            total["product"] += product
            total["auto"] += product if picks == "product" else kernel
            print(f"{name:>5} {op.name:>34} {pos:>9} {kernel * 1e3:>10.2f} {product * 1e3:>11.2f} "
                  f"{'product' if product < kernel else 'kernel':>8} {picks:>10}")
        print(f"{name:>5} {'all layers':>34} {'':>9} {total['kernel'] * 1e3:>10.2f} {total['product'] * 1e3:>11.2f} "
              f"{'':>8} {total['auto'] * 1e3:>7.2f} ms")
    if a.passes:
        from throughput import machine_peak  # benchmarks/throughput.py, beside this script
        peak, peak_name, peaks = machine_peak(torch.device("cpu"), 2048)
        measured = ", ".join(f"{k} {v / 1e12:.3f}" for k, v in peaks.items())
        print(f"\neach pass with PyTorch's kernels; %: of the matmul peak measured now ({measured} TFLOP/s; "
              f"the fastest, {peak_name}, counts)")
        for name in a.dtypes.split(","):
            passes(a.net, a.batch, DTYPES[name.strip()], fmt, a.repeats, peak, name.strip())


if __name__ == "__main__":
    main()
