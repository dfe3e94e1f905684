"""CLIP image features without the real weights: the OpenAI state_dict layout (keys written out here by hand),
size inference, CLIP's preprocessing bit for bit, weight lookup, one clear error per bad file, and `evaluate`.

The image tower was also checked once against openai/CLIP's own `VisionTransformer` (ViT-B/32 and a 2-layer
model): identical outputs on random weights. That code is not a dependency.
"""
from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from ganforge.data.base import Data
from ganforge.errors import GanforgeError
from ganforge.metrics import METRICS, SpaceContext, check_metrics, evaluate
from ganforge.metrics import clip as cl


def official_state(width: int, layers: int, patch: int, grid: int, embed: int, seed: int = 0,
                   text: bool = True) -> dict[str, torch.Tensor]:
    """A random CLIP state_dict with OpenAI's key names and shapes (plus a few text-tower keys, which the image
    tower ignores); scales keep activations O(1)."""
    g = torch.Generator().manual_seed(seed)
    d = width

    def rnd(*shape, scale=1.0, shift=0.0):
        return torch.randn(shape, generator=g) * scale + shift

    sd = {"visual.class_embedding": rnd(d, scale=d ** -0.5),
          "visual.positional_embedding": rnd(grid * grid + 1, d, scale=d ** -0.5),
          "visual.proj": rnd(d, embed, scale=d ** -0.5),
          "visual.conv1.weight": rnd(d, 3, patch, patch, scale=(3 * patch * patch) ** -0.5),
          "visual.ln_pre.weight": rnd(d, scale=0.1, shift=1), "visual.ln_pre.bias": rnd(d, scale=0.1)}
    for i in range(layers):
        b = f"visual.transformer.resblocks.{i}."
        sd.update({b + k: v for k, v in {
            "attn.in_proj_weight": rnd(3 * d, d, scale=d ** -0.5), "attn.in_proj_bias": rnd(3 * d, scale=0.1),
            "attn.out_proj.weight": rnd(d, d, scale=d ** -0.5), "attn.out_proj.bias": rnd(d, scale=0.1),
            "ln_1.weight": rnd(d, scale=0.1, shift=1), "ln_1.bias": rnd(d, scale=0.1),
            "mlp.c_fc.weight": rnd(4 * d, d, scale=d ** -0.5), "mlp.c_fc.bias": rnd(4 * d, scale=0.1),
            "mlp.c_proj.weight": rnd(d, 4 * d, scale=(4 * d) ** -0.5), "mlp.c_proj.bias": rnd(d, scale=0.1),
            "ln_2.weight": rnd(d, scale=0.1, shift=1), "ln_2.bias": rnd(d, scale=0.1)}.items()})
    sd["visual.ln_post.weight"], sd["visual.ln_post.bias"] = rnd(d, scale=0.1, shift=1), rnd(d, scale=0.1)
    if text:
        sd |= {"positional_embedding": rnd(77, 16), "text_projection": rnd(16, embed), "logit_scale": torch.tensor(4.6),
               "token_embedding.weight": rnd(10, 16), "ln_final.weight": torch.ones(16)}
    return sd


def images(n: int, size: int, channels: int = 3, seed: int = 0, width: int | None = None) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, width or size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


@pytest.fixture(scope="module")
def tiny() -> dict[str, torch.Tensor]:
    return official_state(64, 2, patch=8, grid=4, embed=32)    # 32x32 input


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny):
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("clip")
    pth, st = d / "tiny_clip.pth", d / "tiny_clip.safetensors"
    torch.save(tiny, pth)
    save_file({k: v.contiguous() for k, v in tiny.items()}, str(st))
    return pth, st


def test_real_vit_b32_shape_loads_and_runs():
    sd = official_state(768, 12, patch=32, grid=7, embed=512, text=False)
    assert len(sd) == 152 and sum(v.numel() for v in sd.values()) == 87_849_216
    net = cl.build_from_state(sd, "ViT-B-32")
    a = net.arch
    assert (a.width, a.layers, a.heads, a.patch, a.grid, a.embed, a.resolution) == (768, 12, 12, 32, 7, 512, 224)
    assert a.name == "ViT-B/32" and not net.training and not any(p.requires_grad for p in net.parameters())
    f = cl.clip_features(net, images(2, 16, 1))["embed"]
    assert f.shape == (2, 512) and torch.isfinite(f).all() and (f[0] - f[1]).abs().max() > 1e-3


def test_tiny_shapes_text_keys_ignored_and_visual_only_state(tiny):
    net = cl.build_from_state(tiny)                             # text-tower keys present: ignored
    assert net.arch.resolution == 32 and net(torch.randn(2, 3, 32, 32)).shape == (2, 32)
    bare = cl.build_from_state({k[len("visual."):]: v for k, v in tiny.items() if k.startswith("visual.")})
    x = images(3, 20, seed=1)
    torch.testing.assert_close(cl.clip_features(bare, x)["embed"], cl.clip_features(net, x)["embed"])
    one = torch.cat([cl.clip_features(net, x[i:i + 1])["embed"] for i in range(3)])
    torch.testing.assert_close(cl.clip_features(net, x, batch_size=2)["embed"], one, rtol=1e-5, atol=1e-5)
    with pytest.raises(GanforgeError, match="reads 32x32 images"):
        net(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 64, 64), (2, 3, 40, 300), (1, 3, 225, 300),
                                   (1, 3, 224, 224)])
def test_preprocess_is_clips_transform_bit_for_bit(shape):
    """CLIP's _transform: Resize(224, BICUBIC) of the shorter side on a PIL image, CenterCrop(224), RGB, ToTensor,
    Normalize(CLIP mean / std)."""
    tv = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    x = images(shape[0], shape[2], shape[1], seed=2, width=shape[3])
    t = tv.Compose([tv.Resize(224, interpolation=tv.InterpolationMode.BICUBIC), tv.CenterCrop(224),
                    lambda im: im.convert("RGB"), tv.ToTensor(), tv.Normalize(cl.MEAN, cl.STD)])
    ref = torch.stack([t(Image.fromarray(im.permute(1, 2, 0).squeeze(-1).numpy() if shape[1] == 1
                                         else im.permute(1, 2, 0).numpy(), {1: "L", 3: "RGB"}[shape[1]])) for im in x])
    ours = cl.preprocess(x)
    assert ours.shape == (shape[0], 3, 224, 224) and torch.equal(ours, ref)


def test_option_path_env_var_and_cache(monkeypatch, tmp_path, files):
    pth, st = files
    monkeypatch.setenv(cl.WEIGHTS_ENV, str(st))
    assert cl.resolve_weights() == st and cl.resolve_weights(pth) == pth and cl.weights_available()
    monkeypatch.delenv(cl.WEIGHTS_ENV)
    cached = tmp_path / "weights" / cl.WEIGHTS_FILE
    cached.parent.mkdir()
    shutil.copy(pth, cached)
    assert cl.resolve_weights(cache=tmp_path) == cached
    x = images(2, 16, seed=3)
    out = []
    for p in (pth, st):
        net, proto = cl.load_clip(p)
        assert proto["weights_sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        out.append(cl.clip_features(net, x)["embed"])
    assert torch.equal(*out)
    ctx = SpaceContext(weights_dir=tmp_path / "elsewhere", store=None, device="cpu", batch_size=8, data_key="")
    space = cl.clip_space(ctx, path=pth)
    assert (space.name, space.main) == ("clip", "embed") and torch.equal(space.extract(x)["embed"], out[0])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_errors_are_one_clear_line(monkeypatch, tmp_path, tiny):
    monkeypatch.delenv(cl.WEIGHTS_ENV, raising=False)

    def err(fn, *a, **kw) -> str:
        with pytest.raises(GanforgeError) as e:
            fn(*a, **kw)
        assert "\n" not in str(e.value)
        return str(e.value)

    real = Data(x=images(6, 16), kind="image", name="noise")
    msg = err(evaluate, images(6, 16, seed=1), real, ["fd_clip"], cache=tmp_path)
    assert "CLIP weights not found" in msg and cl.WEIGHTS_ENV in msg and str(tmp_path / "weights") in msg
    assert "is not a file" in err(cl.resolve_weights, tmp_path / "nope.pth")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    assert "cannot read CLIP weights" in err(cl.load_clip, tmp_path / "bad.pth")
    ts = torch.jit.script(torch.nn.Linear(2, 2))
    ts.save(str(tmp_path / "ViT-B-32.pt"))                       # OpenAI's format: TorchScript
    msg = err(cl.load_clip, tmp_path / "ViT-B-32.pt")
    assert "TorchScript archive" in msg and "torch.jit.load" in msg and ".state_dict()" in msg

    def load(state) -> str:
        torch.save(state, tmp_path / "w.pth")
        return err(cl.load_clip, tmp_path / "w.pth")

    msg = load({k: v for k, v in tiny.items() if k != "visual.transformer.resblocks.1.ln_2.bias"})
    assert "does not hold an OpenAI CLIP ViT image tower" in msg and "resblocks.1.ln_2.bias" in msg
    assert "prefix 'model.'" in load({"model." + k: v for k, v in tiny.items()})
    assert "ResNet CLIP" in load({"visual.layer1.0.conv1.weight": torch.zeros(1)})
    assert "consistent" in load(tiny | {"visual.ln_post.bias": torch.zeros(65)})
    assert "square grid" in load(tiny | {"visual.positional_embedding": torch.zeros(20, 64)})
    assert "not a state_dict of tensors" in load({"state_dict": tiny})
    with pytest.raises(GanforgeError, match="'fd_clip' is for image data"):
        check_metrics(["fd_clip"], Data(x=torch.randn(5, 3), kind="vector", name="v"))
    with pytest.raises(GanforgeError, match="C = 1, 3 or 4"):
        check_metrics(["fd_clip"], Data(x=images(2, 8, 2), kind="image", name="two"))


def test_evaluate_end_to_end(monkeypatch, tmp_path, files):
    pth = files[0]
    monkeypatch.setenv(cl.WEIGHTS_ENV, str(pth))
    assert "fd_clip" in METRICS.names()
    real = Data(x=images(40, 16, 1, seed=4), kind="image", name="noise")
    fake = images(40, 16, 1, seed=5) // 2
    res = evaluate(fake, real, ["fd_clip"], cache=tmp_path, data_key="noise-16")["fd_clip"]
    assert set(res.values) == {"fd_clip"} and res.values["fd_clip"] > 0.01
    p = res.protocol
    assert p["weights_sha256"] == hashlib.sha256(pth.read_bytes()).hexdigest() and "center crop 32x32" in p["resize"]
    assert "image embedding" in p["features"] and "32-d" in p["features"] and p["dtype"] == "float32"
    assert len(list(tmp_path.glob("metrics/refs/noise-16-clip-*.safetensors"))) == 1
    same = evaluate(real.x, real, ["fd_clip"], cache=False)["fd_clip"].values["fd_clip"]
    assert abs(same) < 1e-8                                     # N = 40 > D = 32: eigenvalue route, float noise
