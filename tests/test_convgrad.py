"""train.conv_weight_grad: convolution weight gradients as one matrix product (training/convgrad.py)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge.components import resolve
from ganforge.data import build_dataset
from ganforge.errors import GanforgeError
from ganforge.training import convgrad
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint
from ganforge.training.state import setup
from ganforge.training.step import train_step
from ganforge.utils.stats import Stats

from .conftest import TINY, resume_is_exact

CPU = torch.device("cpu")

# (transposed, in, out, kernel, stride, padding, output_padding, input size)
GEOMETRIES = [
    (False, 3, 5, (4, 4), (2, 2), (1, 1), (0, 0), (9, 8)),
    (False, 4, 6, (3, 2), (1, 2), (1, 0), (0, 0), (5, 7)),
    (False, 6, 2, (4, 4), (1, 1), (0, 0), (0, 0), (4, 4)),   # the DCGAN head: one position
    (True, 5, 3, (4, 4), (2, 2), (1, 1), (0, 0), (4, 3)),
    (True, 4, 6, (3, 3), (2, 2), (1, 1), (1, 1), (3, 5)),    # output_padding
    (True, 7, 4, (4, 4), (1, 1), (0, 0), (0, 0), (1, 1)),    # the DCGAN stem: latent [N, z, 1, 1]
]


def _native_weight_grad(x, dy, w, stride, padding, out_pad, transposed):
    return torch.ops.aten.convolution_backward(dy, x, w, None, stride, padding, (1, 1), transposed, out_pad, 1,
                                               (False, True, False))[1]


@pytest.mark.parametrize("geom", GEOMETRIES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_matrix_product_is_the_weight_gradient(geom, channels_last):
    tr, ci, co, k, s, p, op, hw = geom
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, ci, *hw, generator=g, dtype=torch.float64)
    w = torch.randn((ci, co, *k) if tr else (co, ci, *k), generator=g, dtype=torch.float64)
    y = F.conv_transpose2d(x, w, None, s, p, op) if tr else F.conv2d(x, w, None, s, p)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    if channels_last:
        x, dy = x.contiguous(memory_format=torch.channels_last), dy.contiguous(memory_format=torch.channels_last)
    want = _native_weight_grad(x, dy, w, s, p, op, tr)
    got = convgrad.gemm_weight_grad(x, dy, tuple(w.shape), s, p, tr)
    assert got.shape == w.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def _net():
    return nn.Sequential(
        nn.ConvTranspose2d(6, 8, 4, 1, 0, bias=False), nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1), nn.ReLU(),
        nn.utils.spectral_norm(nn.Conv2d(4, 8, 4, 2, 1)), nn.LeakyReLU(0.2),
        nn.utils.parametrizations.spectral_norm(nn.Conv2d(8, 3, (2, 3), 1, (0, 1), bias=False)),
        nn.Conv2d(3, 3, 3, padding=1, groups=3))  # grouped: not eligible, PyTorch's own


def _grads(net, x, penalty: bool):
    """Parameter gradients of out.sum() (+ an R1-like penalty: the squared input gradient, create_graph)."""
    torch.manual_seed(0)  # spectral norm's power iteration draws nothing, but be explicit
    x = x.clone().requires_grad_(penalty)
    out = net(x).float()
    loss = out.square().mean()
    if penalty:
        (gx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        loss = loss + gx.square().sum()
    loss.backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("penalty", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_an_installed_net_trains_as_pytorchs_own(penalty, channels_last):
    torch.manual_seed(0)
    a = _net().double()
    b = copy.deepcopy(a)
    assert convgrad.install("gemm", CPU, b) == 4  # the grouped convolution is left alone
    x = torch.randn(5, 6, 1, 1, dtype=torch.float64)
    if channels_last:
        a, b = a.to(memory_format=torch.channels_last), b.to(memory_format=torch.channels_last)
    ya, ga = _grads(a, x, penalty)
    yb, gb = _grads(b, x, penalty)
    assert torch.equal(ya, yb)  # the forward is PyTorch's kernel itself
    for u, v in zip(ga, gb):
        torch.testing.assert_close(v, u, rtol=1e-9, atol=1e-12)
    assert convgrad.gemm_runs(b) == 4  # the penalty's create_graph pass runs PyTorch's backward; loss.backward ours
    with torch.no_grad():  # sampling: the plain forward, nothing recorded
        b(x)
    assert convgrad.gemm_runs(b) == 4


def test_transposed_calls_with_an_output_size_give_pytorchs_gradients():
    torch.manual_seed(0)
    a = nn.ConvTranspose2d(3, 2, 3, 2, 1).double()
    b = copy.deepcopy(a)
    convgrad.install("gemm", CPU, b)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for net in (a, b):  # output_padding 1, then 0, both graphs alive when backward runs
        (net(x, output_size=[8, 8]).square().sum() + net(x, output_size=[7, 7]).sum()).backward()
    torch.testing.assert_close(b.weight.grad, a.weight.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(b.bias.grad, a.bias.grad, rtol=1e-9, atol=1e-12)


def test_bf16_autocast_follows_autocasts_rule():
    torch.manual_seed(0)
    a = _net()
    b = copy.deepcopy(a)
    convgrad.install("gemm", CPU, b)
    x = torch.randn(5, 6, 1, 1)
    outs = []
    for net in (a, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
        y.float().square().mean().backward()
        outs.append((y, [p.grad for p in net.parameters()]))
    assert outs[1][0].dtype == outs[0][0].dtype == torch.bfloat16 and torch.equal(outs[0][0], outs[1][0])
    for u, v in zip(outs[0][1], outs[1][1]):
        assert v.dtype == torch.float32  # the master weights' gradients stay fp32
        torch.testing.assert_close(v, u, rtol=0.02, atol=1e-3)  # bf16 products summed in another order


def test_the_auto_rule(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert convgrad.install("auto", CPU, _net()) == 0  # no AMX: nothing changes
    assert convgrad.install("native", CPU, _net()) == 0
    assert convgrad.install("gemm", torch.device("cuda"), _net()) == 0  # cuDNN's business
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    stem = nn.ConvTranspose2d(64, 32, 4, 1, 0, bias=False)             # 1x1 latent in: 1 position
    up = nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False)               # 4x4 in: 16
    up_wide = nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False)           # 8x8 in: 64
    down = nn.Conv2d(16, 32, 4, 2, 1, bias=False)                      # 8x8 -> 4x4 out: 16
    down_wide = nn.Conv2d(8, 16, 4, 2, 1, bias=False)                  # 16x16 -> 8x8 out: 64
    net = nn.Sequential(stem, up, up_wide, down_wide, down)
    assert convgrad.install("auto", CPU, net) == 5
    with torch.autocast("cpu", dtype=torch.bfloat16):  # narrow layers (< LARGE weights): PyTorch's kernels
        net(torch.randn(2, 64, 1, 1)).float().sum().backward()
    assert [m._gf.gemm_runs for m in net] == [0, 0, 0, 0, 0]
    assert convgrad.auto_picks_product(nn.ConvTranspose2d(512, 256, 4, 2, 1), torch.randn(1, 512, 4, 4),
                                       torch.bfloat16, amx=True)  # the 64x64 DCGAN's wide 4x4 layer
    monkeypatch.setattr(convgrad, "LARGE", 1)  # from here on: the positions part of the rule
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randn(2, 64, 1, 1)).float().sum().backward()
    assert [m._gf.gemm_runs for m in net] == [1, 1, 0, 0, 1]
    net.zero_grad()
    net(torch.randn(2, 64, 1, 1)).sum().backward()  # fp32: oneDNN's kernel was the faster there
    assert [m._gf.gemm_runs for m in net] == [1, 1, 0, 0, 1]


def test_training_with_the_matrix_product_resumes_exactly(tmp_path):
    over = TINY + ["train.tick_kimg=0.128", "train.precision=fp32", "loss.r1_gamma=1", "loss.reg_interval=2"]
    over, native = over + ["train.conv_weight_grad=gemm"], over + ["train.conv_weight_grad=native"]
    full = resume_is_exact(over, tmp_path)
    a = load_checkpoint(list_checkpoints(full)[-1])
    c = load_checkpoint(list_checkpoints(ganforge.train("digits", overrides=native, out=tmp_path / "n",
                                                        progress=False))[-1])
    for k in a["G"]:  # the same training up to the order of a sum
        torch.testing.assert_close(a["G"][k], c["G"][k], rtol=1e-3, atol=1e-4)
    assert "conv_weight_grad: gemm" in (full / "config.yaml").read_text()


def test_setup_installs_it_into_g_and_d_not_g_ema():
    cfg = resolve("digits", TINY + ["train.conv_weight_grad=gemm"])
    ctx = setup(cfg, build_dataset(cfg.data), CPU)
    train_step(ctx, Stats())
    convs = [m for net in (ctx.G, ctx.D) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and all(hasattr(m, "_gf") for m in convs)
    assert convgrad.gemm_runs(ctx.G, ctx.D) >= len(convs)  # every one ran its weight gradient as a product
    assert not any(hasattr(m, "_gf") for m in ctx.G_ema.modules())


def test_a_bad_value_is_one_clear_error():
    with pytest.raises(GanforgeError, match="conv_weight_grad"):
        ganforge.train("digits", overrides=TINY + ["train.conv_weight_grad=fast"], progress=False)
