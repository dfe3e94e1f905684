"""Convolution weight gradients as one matrix product where oneDNN's kernel is slow (train.conv_weight_grad).

A convolution's weight gradient is dW = dY^T @ unfold(X) (a transposed convolution's: X^T @ unfold(dY)): one
matrix product over every position of the batch. oneDNN computes it with a backward-weights kernel of its own.
On a CPU with AMX, in bf16, that kernel ran the wide layers with few positions of a 64x64 DCGAN (4x4 maps of 256
and 512 channels) at 0.22 TFLOP/s, where unfold + matrix product ran at 0.7, 3x faster (the stem on the 1x1
latent and the 1x1 head: 3x to 10x); on maps of 8x8 positions and more the unfold costs more than the kernel, and
in fp32 the gain was smaller and not stable (measured per layer on a 2-core Intel Xeon with AMX,
benchmarks/conv_weight_grad.py; docs/benchmarks.md "Speed"); on an Ice Lake without bf16 it was a stable 2x per
layer in fp32, yet the whole step ran 7-9% slower with it in one of two runs (+10% / -3% in the other).
Narrow layers lost with it (the digits preset ran 24% slower when every layer with few positions took the
product). Hence the rule of 'auto': the matrix product for the layers with at most SMALL positions per sample
and at least LARGE weights, on a CPU with AMX in bf16, PyTorch's kernel everywhere else. It is a rule of shapes,
not a timing, so two runs, and a run and its resumption, make the same choices.

The forward pass and the input gradient stay PyTorch's own kernels. Where the backward pass itself is being
differentiated (R1/R2 and the gradient penalty call autograd.grad with create_graph=True) the whole backward is
PyTorch's differentiable convolution_backward, so double backward is exactly PyTorch's.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

SMALL = 16  # 'auto': positions per sample (output for a convolution, input for a transposed one) at most this
LARGE = 1 << 19  # 'auto': and at least this many weights (narrow layers ran slower with the product: the digits
                 # preset lost 24% of its speed when every layer with few positions took it)


def gemm_weight_grad(x: torch.Tensor, dy: torch.Tensor, wshape: tuple[int, ...], stride: tuple[int, int],
                     padding: tuple[int, int], transposed: bool) -> torch.Tensor:
    """The weight gradient of conv2d(x, W) (or conv_transpose2d) for output gradient dy, as one matrix product.

    Rows are the batch's positions (b, i, j), columns the kernel's taps (channel, kh, kw), matching PyTorch's
    weight layout [out, in, kh, kw] (transposed: [in, out, kh, kw]). groups = 1, dilation = 1."""
    kh, kw = wshape[2], wshape[3]
    src, rows = (dy, x) if transposed else (x, dy)  # unfold the larger-resolution side's windows
    n1, n2 = rows.shape[2], rows.shape[3]
    padded = F.pad(src, (padding[1], padding[1], padding[0], padding[0])).permute(0, 2, 3, 1)  # [B, H, W, C]
    win = padded.unfold(1, kh, stride[0]).unfold(2, kw, stride[1])[:, :n1, :n2]              # [B, n1, n2, C, kh, kw]
    cols = win.reshape(-1, win.shape[3] * kh * kw)
    flat = rows.permute(0, 2, 3, 1).reshape(-1, rows.shape[1])
    return (flat.t() @ cols).view(wshape)


class _Layer:
    """What one installed convolution knows: its geometry and the rule."""

    def __init__(self, m: nn.Module, mode: str, amx: bool):
        self.transposed = isinstance(m, nn.ConvTranspose2d)
        self.stride, self.padding, self.dilation = tuple(m.stride), tuple(m.padding), tuple(m.dilation)
        self.out_pad = (0, 0)  # a transposed convolution's output padding, set by each forward call (and kept by
        # that call's backward: output_size may differ between calls)
        self.kernel = tuple(m.kernel_size)
        self.weights = m.in_channels * m.out_channels * self.kernel[0] * self.kernel[1]  # not m.weight: reading a
        # parametrized weight runs its parametrization (spectral norm's power iteration)
        self.mode, self.amx = mode, amx
        self.gemm_runs = 0  # weight gradients computed as a matrix product so far
        self.plain_forward = m.forward

    def conv(self, x, w, b):
        if self.transposed:
            return F.conv_transpose2d(x, w, b, self.stride, self.padding, self.out_pad, 1, self.dilation)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, 1)

    def backward_args(self, dy, x, w, bias: bool, out_pad: tuple[int, int]):
        bias_sizes = [w.shape[1] if self.transposed else w.shape[0]] if bias else None
        return (dy, x, w, bias_sizes, self.stride, self.padding, self.dilation, self.transposed, out_pad, 1)

    def wants_gemm(self, x: torch.Tensor, dtype: torch.dtype) -> bool:
        """The rule, for input x computed in dtype: 'gemm' always; 'auto' on AMX in bf16, wide, few positions."""
        if self.mode == "gemm":
            return True
        if not (self.amx and dtype == torch.bfloat16 and self.weights >= LARGE):
            return False
        h, w = x.shape[2], x.shape[3]
        if not self.transposed:  # the output's positions
            h = (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
            w = (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        return h * w <= SMALL

    def weight_grad(self, x, dy, w):
        self.gemm_runs += 1
        return gemm_weight_grad(x, dy, tuple(w.shape), self.stride, self.padding, self.transposed)


class _ConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, layer):
        ctx.layer, ctx.bias, ctx.out_pad = layer, b is not None, layer.out_pad  # this call's, for its backward
        ctx.save_for_backward(x, w)
        return layer.conv(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        layer = ctx.layer
        nx, nw, nb = ctx.needs_input_grad[:3]
        cl = x.is_contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
        args = layer.backward_args(dy, x, w, ctx.bias, ctx.out_pad)
        if torch.is_grad_enabled():  # create_graph: PyTorch's differentiable backward, all of it
            gx, gw, gb = torch.ops.aten.convolution_backward(*args, (nx, nw, nb))
            return gx, gw, gb, None
        gx, _, gb = torch.ops.aten.convolution_backward(*args, (nx, False, nb))
        return gx, (layer.weight_grad(x, dy, w) if nw else None), gb, None


def _forward(self, x, output_size=None):
    layer = self._gf
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if not (torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4 and layer.wants_gemm(x, dtype)):
        return layer.plain_forward(x) if output_size is None else layer.plain_forward(x, output_size)
    if layer.transposed:
        layer.out_pad = tuple(self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size, 2,
                                                   self.dilation))
    w, b = self.weight, self.bias
    if dtype != x.dtype or dtype != w.dtype:  # autocast's rule for convolutions: both in its dtype
        x, w, b = x.to(dtype), w.to(dtype), None if b is None else b.to(dtype)
    with torch.autocast("cpu", enabled=False):
        return _ConvFn.apply(x, w, b, layer)


def eligible(m: nn.Module) -> bool:
    """Plain 2-D convolutions: one group, no dilation, zero padding given as numbers."""
    return (isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.groups == 1 and tuple(m.dilation) == (1, 1)
            and m.padding_mode == "zeros" and not isinstance(m.padding, str))


def has_amx() -> bool:
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())  # private, hence the getattr


def auto_picks_product(m: nn.Module, x: torch.Tensor, dtype: torch.dtype, amx: bool | None = None) -> bool:
    """Whether 'auto' computes the weight gradient of convolution m on input x (computed in dtype) as a product."""
    return _Layer(m, "auto", has_amx() if amx is None else amx).wants_gemm(x, dtype)


def install(mode: str, device: torch.device, *nets: nn.Module) -> int:
    """train.conv_weight_grad on the CPU: route the weight gradients of the nets' eligible convolutions through
    the rule ('auto': only on a CPU with AMX) or always through the matrix product ('gemm'); returns how many
    convolutions it took. 'native', and any other device, leave PyTorch's kernels in charge (on CUDA cuDNN has
    its own autotuner, train.cudnn_benchmark)."""
    amx = has_amx()
    if mode == "native" or device.type != "cpu" or (mode == "auto" and not amx):
        return 0
    n = 0
    for net in nets:
        for m in net.modules():
            if eligible(m) and not hasattr(m, "_gf"):
                m._gf = _Layer(m, mode, amx)
                m.forward = types.MethodType(_forward, m)
                n += 1
    return n


def gemm_runs(*nets: nn.Module) -> int:
    """How many weight gradients the nets' installed convolutions have computed as a matrix product so far."""
    return sum(getattr(getattr(m, "_gf", None), "gemm_runs", 0) for net in nets for m in net.modules())
