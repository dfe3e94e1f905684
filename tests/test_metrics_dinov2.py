"""DINOv2 features without the real weights: the official state_dict layout (keys written out here by hand, not
taken from the module), size inference, position-embedding interpolation, dgm-eval's preprocessing bit for bit,
weight lookup (option path, $GANFORGE_DINOV2_WEIGHTS, cache), one clear error per bad file, and `evaluate`.

The network was also checked once against facebookresearch/dinov2's own `vision_transformer.py` (ViT-S/14, with
4 registers, a SwiGLU model, 112x112 / 224x224 / 518x518 / 112x168 inputs): identical outputs on random weights.
That code is not a dependency, so these tests pin the layout and the arithmetic in other ways.
"""
from __future__ import annotations

import hashlib
import shutil

import pytest
import torch
import torch.nn.functional as F

from ganforge.data.base import Data
from ganforge.errors import GanforgeError
from ganforge.metrics import METRICS, SPACES, SpaceContext, check_metrics, evaluate
from ganforge.metrics import dinov2 as dv


def official_state(embed: int, depth: int, grid: int, patch: int = 14, swiglu_hidden: int = 0, registers: int = 0,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state_dict with the key names and shapes of `dinov2_vit*14_pretrain.pth` (written out here, so a
    renamed parameter in the module fails the tests); scales keep activations O(1) through the blocks."""
    g = torch.Generator().manual_seed(seed)
    d = embed

    def rnd(*shape, scale=1.0, shift=0.0):
        return torch.randn(shape, generator=g) * scale + shift

    sd = {"cls_token": rnd(1, 1, d), "pos_embed": rnd(1, 1 + grid * grid, d, scale=0.5), "mask_token": rnd(1, d)}
    if registers:
        sd["register_tokens"] = rnd(1, registers, d)
    sd["patch_embed.proj.weight"] = rnd(d, 3, patch, patch, scale=(3 * patch * patch) ** -0.5)
    sd["patch_embed.proj.bias"] = rnd(d, scale=0.1)
    for i in range(depth):
        b = f"blocks.{i}."
        ffn = ({"mlp.w12.weight": rnd(2 * swiglu_hidden, d, scale=d ** -0.5), "mlp.w12.bias": rnd(2 * swiglu_hidden,
                scale=0.1), "mlp.w3.weight": rnd(d, swiglu_hidden, scale=swiglu_hidden ** -0.5),
                "mlp.w3.bias": rnd(d, scale=0.1)} if swiglu_hidden else
               {"mlp.fc1.weight": rnd(4 * d, d, scale=d ** -0.5), "mlp.fc1.bias": rnd(4 * d, scale=0.1),
                "mlp.fc2.weight": rnd(d, 4 * d, scale=(4 * d) ** -0.5), "mlp.fc2.bias": rnd(d, scale=0.1)})
        sd.update({b + k: v for k, v in {
            "norm1.weight": rnd(d, scale=0.1, shift=1), "norm1.bias": rnd(d, scale=0.1),
            "attn.qkv.weight": rnd(3 * d, d, scale=d ** -0.5), "attn.qkv.bias": rnd(3 * d, scale=0.1),
            "attn.proj.weight": rnd(d, d, scale=d ** -0.5), "attn.proj.bias": rnd(d, scale=0.1),
            "ls1.gamma": rnd(d, scale=0.1, shift=0.5),
            "norm2.weight": rnd(d, scale=0.1, shift=1), "norm2.bias": rnd(d, scale=0.1),
            **ffn, "ls2.gamma": rnd(d, scale=0.1, shift=0.5)}.items()})
    sd["norm.weight"], sd["norm.bias"] = rnd(d, scale=0.1, shift=1), rnd(d, scale=0.1)
    return sd


def images(n: int, size: int, channels: int = 1, seed: int = 0, width: int | None = None) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, width or size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


@pytest.fixture(scope="module")
def tiny() -> dict[str, torch.Tensor]:
    return official_state(64, 2, grid=4)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny):
    """The tiny model as .pth and .safetensors."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("dinov2")
    pth, st = d / "tiny_dinov2.pth", d / "tiny_dinov2.safetensors"
    torch.save(tiny, pth)
    save_file({k: v.contiguous() for k, v in tiny.items()}, str(st))
    return pth, st


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(dv.WEIGHTS_ENV, raising=False)


# ---------------------------------------------------------------------------------------------------- network


def test_real_vit_s14_shape_loads_and_runs():
    sd = official_state(384, 12, grid=37)                       # pos_embed [1, 1370, 384], as the 518x518 file
    assert len(sd) == 175 and sd["pos_embed"].shape == (1, 1370, 384)
    net = dv.build_from_state(sd, "vits14")
    a = net.arch
    assert (a.embed_dim, a.depth, a.heads, a.patch, a.grid, a.hidden, a.ffn) == (384, 12, 6, 14, 37, 1536, "mlp")
    assert a.name == "ViT-S/14" and sum(p.numel() for p in net.parameters()) == 22_056_576
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    f = dv.dinov2_features(net, images(2, 16))["cls"]
    assert f.shape == (2, 384) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert (f[0] - f[1]).abs().max() > 1e-3                     # two images, two features


def test_tiny_shapes_swiglu_registers_and_batch_independence(tiny):
    net = dv.build_from_state(tiny)
    assert net.arch.heads == 1 and net(torch.randn(2, 3, 224, 224)).shape == (2, 64)
    x = images(5, 16, 3, seed=1)
    one = torch.cat([dv.dinov2_features(net, x[i:i + 1])["cls"] for i in range(5)])
    torch.testing.assert_close(dv.dinov2_features(net, x, batch_size=2)["cls"], one, rtol=1e-5, atol=1e-5)
    # ViT-g's SwiGLU feed-forward (mlp.w12 / mlp.w3) and the *_reg4 register tokens, with 2 heads
    g = dv.build_from_state(official_state(128, 2, grid=4, swiglu_hidden=344, registers=4))
    assert (g.arch.ffn, g.arch.hidden, g.arch.heads, g.arch.registers) == ("swiglu", 344, 2, 4)
    assert g.arch.name == "ViT-128x2/14 with 4 registers" and g(torch.randn(1, 3, 70, 42)).shape == (1, 128)


def test_position_embeddings_are_interpolated_as_dinov2(tiny):
    net = dv.build_from_state(tiny)                             # a 4x4 grid of position embeddings
    pos = tiny["pos_embed"]
    assert net.interpolate_pos_embed(4, 4) is net.pos_embed     # the trained grid: used as it is
    p = net.interpolate_pos_embed(16, 16)                       # 224 / 14
    grid = pos[:, 1:].reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    by_scale = F.interpolate(grid, scale_factor=(16.1 / 4, 16.1 / 4), mode="bicubic").flatten(2).transpose(1, 2)
    by_size = F.interpolate(grid, size=(16, 16), mode="bicubic").flatten(2).transpose(1, 2)
    assert p.shape == (1, 257, 64) and torch.equal(p[:, :1], pos[:, :1])
    torch.testing.assert_close(p[:, 1:], by_scale)
    assert (p[:, 1:] - by_size).abs().max() > 1e-3              # the + 0.1 offset matters
    assert net.interpolate_pos_embed(3, 5).shape == (1, 16, 64)
    assert net.interpolate_pos_embed(4, 6).shape == (1, 25, 64)  # one side as trained, the other not
    assert net(torch.randn(1, 3, 112, 168)).shape == (1, 64)
    with pytest.raises(GanforgeError, match="not a multiple of the patch size 14"):
        net(torch.randn(1, 3, 100, 112))


# ---------------------------------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("shape", [(3, 1, 16, 16), (2, 3, 64, 64), (2, 4, 30, 30), (2, 3, 40, 300), (1, 3, 224, 224),
                                   (1, 3, 500, 500)])
def test_preprocess_is_dgm_evals_transform_bit_for_bit(shape):
    """dgm-eval: PIL image (.convert('RGB')) -> Resize((224, 224), BICUBIC) -> ToTensor -> Normalize(ImageNet).
    Square and wider-than-tall images: Pillow resizes those horizontally first in every version."""
    tv = pytest.importorskip("torchvision.transforms")
    import numpy as np
    from PIL import Image

    x = images(shape[0], shape[2], shape[1], seed=2, width=shape[3])
    t = tv.Compose([tv.Resize((224, 224), tv.InterpolationMode.BICUBIC), tv.ToTensor(),
                    tv.Normalize(np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))])
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[shape[1]]
    ref = torch.stack([t(Image.fromarray(im.permute(1, 2, 0).squeeze(-1).numpy() if shape[1] == 1
                                         else im.permute(1, 2, 0).numpy(), mode).convert("RGB")) for im in x]).float()
    ours = dv.preprocess(x)
    assert ours.shape == (shape[0], 3, 224, 224) and ours.dtype == torch.float32
    assert torch.equal(ours, ref)


def test_channels_are_checked():
    with pytest.raises(GanforgeError, match="C = 1, 3 or 4"):
        dv.preprocess(images(1, 16, 2))
    with pytest.raises(GanforgeError, match="uint8"):
        dv.preprocess(images(1, 16, 3).float())


# ---------------------------------------------------------------------------------------------------- weights


def test_option_path_env_var_and_cache(monkeypatch, tmp_path, files, tiny):
    pth, st = files
    monkeypatch.setenv(dv.WEIGHTS_ENV, str(st))
    assert dv.resolve_weights() == st and dv.weights_available()
    assert dv.resolve_weights(pth) == pth                       # the explicit path wins over the env var
    monkeypatch.delenv(dv.WEIGHTS_ENV)
    assert not dv.weights_available(tmp_path)
    cached = tmp_path / "weights" / dv.WEIGHTS_FILE
    cached.parent.mkdir()
    shutil.copy(pth, cached)
    assert dv.resolve_weights(cache=tmp_path) == cached and dv.weights_available(tmp_path)
    x = images(2, 16, 3, seed=3)
    feats = {}
    for p in (pth, st):
        net, proto = dv.load_dinov2(p)
        assert proto["weights"] == p.name and proto["weights_sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        feats[p.suffix] = dv.dinov2_features(net, x)["cls"]
    assert torch.equal(feats[".pth"], feats[".safetensors"])
    # the feature space with an explicit path (the Python route to weights outside the env var and the cache)
    ctx = SpaceContext(weights_dir=tmp_path / "elsewhere", store=None, device="cpu", batch_size=8, data_key="")
    space = dv.dinov2_space(ctx, path=st)
    assert (space.name, space.main) == ("dinov2", "cls") and torch.equal(space.extract(x)["cls"], feats[".pth"])


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_file_says_where_it_looked_and_how_to_fix(no_env, tmp_path):
    real = Data(x=images(8, 16), kind="image", name="noise")
    with pytest.raises(GanforgeError, match="DINOv2 weights not found") as e:
        evaluate(images(8, 16, seed=1), real, ["fd_dinov2"], cache=tmp_path)
    msg = one_line(e)
    assert str(tmp_path / "weights" / dv.WEIGHTS_FILE) in msg and dv.WEIGHTS_ENV in msg and dv.WEIGHTS_URL in msg
    assert not (tmp_path / "weights").exists()                  # nothing downloaded, nothing created
    with pytest.raises(GanforgeError, match="is not a file") as e:
        dv.resolve_weights(tmp_path / "nope.pth")
    assert dv.WEIGHTS_URL in one_line(e)


def test_corrupt_files_are_one_clear_error(tmp_path, files):
    for name, data in (("bad.pth", b"<html>not a checkpoint</html>"), ("bad.safetensors", b"\x08\x00\x00"),
                       ("cut.pth", files[0].read_bytes()[:5000])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GanforgeError, match=f"cannot read DINOv2 weights .*{name}") as e:
            dv.load_dinov2(tmp_path / name)
        assert dv.WEIGHTS_URL in one_line(e)
    (tmp_path / "w.bin").write_bytes(files[0].read_bytes())
    with pytest.raises(GanforgeError, match="unknown file type '.bin'"):
        dv.load_dinov2(tmp_path / "w.bin")


def test_wrong_keys_and_shapes_are_one_clear_error(tmp_path, tiny):
    def load(state, name="w.pth"):
        torch.save(state, tmp_path / name)
        with pytest.raises(GanforgeError) as e:
            dv.load_dinov2(tmp_path / name)
        return one_line(e)

    bad = {k: v for k, v in tiny.items() if k != "blocks.1.ls2.gamma"} | {"head.weight": torch.zeros(3)}
    msg = load(bad)
    assert "does not hold DINOv2 ViT weights" in msg and "missing keys blocks.1.ls2.gamma" in msg
    assert "unexpected keys head.weight" in msg
    msg = load({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "fc.weight": torch.zeros(1008, 2048)})
    assert "missing keys patch_embed.proj.weight, pos_embed" in msg and "Conv2d_1a_3x3.conv.weight" in msg
    assert "prefix 'module.'" in load({"module." + k: v for k, v in tiny.items()})   # a wrapped training checkpoint
    msg = load(tiny | {"norm.bias": torch.zeros(65)})
    assert "does not hold consistent DINOv2 ViT weights" in msg and "norm.bias" in msg
    assert "square grid" in load(tiny | {"pos_embed": torch.zeros(1, 20, 64)})
    assert "not a state_dict of tensors" in load({"model": tiny, "epoch": 3})
    assert "head width 64" in load(official_state(96, 1, grid=2))


def test_data_checks():
    vec = Data(x=torch.randn(10, 4), kind="vector", name="vecs")
    with pytest.raises(GanforgeError, match="'fd_dinov2' is for image data"):
        check_metrics(["fd_dinov2"], vec)
    with pytest.raises(GanforgeError, match="metric 'kid_dinov2'.*C = 1, 3 or 4"):
        check_metrics(["kid_dinov2"], Data(x=images(4, 16, 2), kind="image", name="two-channel"))
    with pytest.raises(GanforgeError, match="for images"):
        SPACES.get("dinov2").check(vec)


# ---------------------------------------------------------------------------------------------------- evaluate


def test_evaluate_end_to_end(monkeypatch, tmp_path, files):
    pth = files[0]
    monkeypatch.setenv(dv.WEIGHTS_ENV, str(pth))
    assert {"fd_dinov2", "kid_dinov2", "pr_dinov2"} <= set(METRICS.names())
    real = Data(x=images(40, 16, seed=4), kind="image", name="noise", info=dict(split="train"))
    fake = images(40, 16, seed=5) // 2                          # darker: a different distribution
    names = ["fd_dinov2", "kid_dinov2", "pr_dinov2"]
    res = evaluate(fake, real, names, cache=tmp_path, data_key="noise-16", batch_size=16)
    assert list(res) == names
    assert set(res["fd_dinov2"].values) == {"fd_dinov2"} and res["fd_dinov2"].values["fd_dinov2"] > 0.1
    assert set(res["kid_dinov2"].values) == {"kid_dinov2", "kid_dinov2_std"}
    assert set(res["pr_dinov2"].values) == {"precision", "recall"}
    assert all(0 <= v <= 1 for v in res["pr_dinov2"].values.values())
    p = res["fd_dinov2"].protocol
    assert p["weights_sha256"] == hashlib.sha256(pth.read_bytes()).hexdigest() and p["weights"] == pth.name
    assert "Pillow bicubic to 224x224" in p["resize"] and p["pos_embed"].startswith("4x4 -> 16x16")
    assert "CLS token" in p["features"] and "64-d" in p["features"] and p["dtype"] == "float32"
    assert p["n_real"] == 40 and p["n_fake"] == 40
    # the real features are cached per protocol, and the same numbers come back from the cache
    assert len(list(tmp_path.glob("metrics/refs/noise-16-dinov2-*.safetensors"))) == 1
    again = evaluate(fake, real, ["fd_dinov2"], cache=tmp_path, data_key="noise-16")
    assert again["fd_dinov2"].values == res["fd_dinov2"].values
    # a set against itself: ~0 (exact low-rank identity, N = 40 <= D = 64)
    same = evaluate(real.x, real, ["fd_dinov2"], cache=False)["fd_dinov2"].values["fd_dinov2"]
    assert abs(same) < 1e-8


def test_evaluate_reads_the_cache_file(no_env, tmp_path, files):
    cached = tmp_path / "weights" / dv.WEIGHTS_FILE
    cached.parent.mkdir()
    shutil.copy(files[1], cached)                               # safetensors bytes under the official name
    with pytest.raises(GanforgeError, match="cannot read DINOv2 weights"):   # .pth is read with torch.load
        evaluate(images(4, 16, seed=1), Data(x=images(4, 16), kind="image", name="noise"), ["fd_dinov2"],
                 cache=tmp_path)
    shutil.copy(files[0], cached)
    res = evaluate(images(6, 16, seed=1), Data(x=images(6, 16), kind="image", name="noise"), ["fd_dinov2"],
                   cache=tmp_path)
    assert res["fd_dinov2"].protocol["weights"] == dv.WEIGHTS_FILE


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_is_close_to_cpu(tiny, files):
    net, proto = dv.load_dinov2(files[0], device="cuda")
    assert proto["dtype"].startswith("bf16 autocast")
    x = images(8, 16, 3, seed=6)
    cpu = dv.dinov2_features(net, x)["cls"]
    gpu = dv.dinov2_features(net, x.cuda(), device="cuda")["cls"]
    assert gpu.device.type == "cpu" and gpu.dtype == torch.float32
    torch.testing.assert_close(gpu, cpu, rtol=0.1, atol=0.1)
    torch.testing.assert_close(dv.preprocess(x.cuda()).cpu(), dv.preprocess(x))   # float64 resize on the GPU


def test_the_weights_option_names_the_file(no_env, tmp_path, files):
    """`--set metrics.fd_dinov2.weights=PATH` (here through evaluate's options): no env var, no cache file."""
    real = Data(x=images(12, 16), kind="image", name="noise")
    res = evaluate(images(12, 16, seed=1), real, ["fd_dinov2"], cache=tmp_path,
                   options={"fd_dinov2": {"weights": str(files[1])}})
    p = res["fd_dinov2"].protocol
    assert p["weights"] == files[1].name and p["options"] == {"weights": str(files[1])}
    with pytest.raises(GanforgeError, match="metrics.fd_dinov2"):
        evaluate(images(12, 16, seed=1), real, ["fd_dinov2"], cache=tmp_path, options={"fd_dinov2": {"wieghts": "x"}})
