"""`ganforge train DIR`: the folder preset's survey and choices, and the folder route's bad-input catalogue
(each one clear line, exit 2, nothing left behind), through the command line as a user meets them."""
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import ganforge
from ganforge.components import resolve
from ganforge.recipes import Survey, choose_geometry, survey
from ganforge.training.checkpoint import list_checkpoints

from .conftest import one_line_error, run_cli

SMALL = ["model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.kimg=0.064", "train.tick_kimg=0.032",
         "train.grid_size=8", "train.precision=fp32", "train.ema_kimg=0.01", "train.metrics=[]"]


def _sets(*kv):
    return [a for x in kv for a in ("--set", x)]


def _write(d, n, size=(12, 8), mode="L", seed=0, ext="png"):
    """n images of `size` (W, H) in folder d."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + (() if mode == "L" else (len(mode),))
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(d / f"{seed}-{i:04d}.{ext}")
    return d




# ---- the survey and the choices ----------------------------------------------------------------------

def test_survey_counts_kinds_and_classes(tmp_path):
    _write(tmp_path / "a", 5)
    _write(tmp_path / "b", 4, mode="RGB", seed=1)
    s = survey(tmp_path)
    assert s.n == 9 and s.kinds == {"L", "RGB"} and s.classes == ["a", "b"] and s.same_size
    _write(tmp_path / "c", 1, seed=2)
    (tmp_path / "loose.png").write_bytes((tmp_path / "a" / "0-0000.png").read_bytes())
    assert survey(tmp_path).classes == []  # one image outside the subfolders: no labels


@pytest.mark.parametrize("sizes, cap, expect", [
    ([(28, 28)], 64, (0, 0)),             # native
    ([(48, 80)], 64, (0, 0)),             # non-square, within 64x64 pixels: native
    ([(300, 200)] * 3 + [(310, 190)], 64, (64, 96)),   # landscape, several sizes: short side 64, aspect kept
    ([(200, 300)], 64, (96, 64)),         # portrait
    ([(1024, 1024)], 256, (256, 0)),      # a GPU's cap
    ([(500, 498), (520, 510)], 64, (64, 0)),  # near-square: square
    ([(30, 30)], 64, (16, 0)),            # 30 does not halve to >= 4 twice... it does once: 15 is odd
])
def test_geometry_rules(sizes, cap, expect):
    s = Survey(len(sizes), sizes, {"RGB"})
    res, width, why = choose_geometry(s, cap)
    if sizes == [(30, 30)]:  # 30 -> 15: halves once to >= 4, so the nets take it natively
        assert (res, width) == (0, 0)
        return
    assert (res, width) == expect, why


def test_tiny_images_say_how_to_upscale():
    with pytest.raises(ganforge.GanforgeError, match="tiny.*set data.resolution"):
        choose_geometry(Survey(1, [(5, 5), (6, 6)], {"L"}), 64)


def test_the_user_s_settings_win_and_the_choices_are_explained(tmp_path):
    _write(tmp_path / "imgs", 40, size=(80, 48))
    notes = []
    cfg = resolve(str(tmp_path / "imgs"), ["train.batch=16", "augment.policy=[]"], notes)
    assert cfg.preset == "folder" and cfg.data.path == str(tmp_path / "imgs")
    assert (cfg.data.resolution, cfg.train.batch, cfg.augment.policy) == (0, 16, [])  # native; the user's
    text = "\n".join(notes)
    assert "40 images" in text and "no labels" in text and "train.metrics=['ssl_fd', 'diversity']" in text
    assert "train.batch" not in text and "augment.policy" not in text
    cfg = resolve("folder", [f"data.path={tmp_path / 'imgs'}", "data.resolution=16"], notes := [])
    assert cfg.data.resolution == 16 and cfg.augment.p == 1.0 and cfg.augment.policy
    assert not any("data.resolution" in n for n in notes)


def test_labelled_folders_get_label_metrics_and_big_folders_no_augmentation(tmp_path, monkeypatch):
    _write(tmp_path / "l" / "cat", 8)
    _write(tmp_path / "l" / "dog", 8, seed=1)
    cfg = resolve(str(tmp_path / "l"))
    assert cfg.train.metrics == ["domain_fd", "class_kl"] and cfg.train.batch == 8
    import ganforge.recipes as recipes
    monkeypatch.setattr(recipes, "SMALL_DATA", 10)
    assert resolve(str(tmp_path / "l")).augment.policy == []


def test_big_folders_get_batchnorm_in_d_unless_a_penalty_or_the_user_says_otherwise(tmp_path, monkeypatch):
    """Without augmentation the folder DCGAN takes BatchNorm in D (as `fashion`); small data keeps none (measured
    with augmentation without it), and so do R1/R2 (they need D per sample) and the user's own choice."""
    import ganforge.recipes as recipes
    _write(tmp_path / "imgs", 16)
    assert resolve(str(tmp_path / "imgs")).model.d_norm == "none"  # 16 images: augmentation, no BatchNorm in D
    monkeypatch.setattr(recipes, "SMALL_DATA", 10)
    notes = []
    assert resolve(str(tmp_path / "imgs"), [], notes).model.d_norm == "batch"
    assert any(n.startswith("model.d_norm=batch: 16 images, no augmentation") for n in notes)
    assert resolve(str(tmp_path / "imgs"), ["model.d_norm=spectral"]).model.d_norm == "spectral"
    assert resolve(str(tmp_path / "imgs"), ["loss.r1_gamma=1"]).model.d_norm == "none"


def test_train_dir_end_to_end(tmp_path):
    imgs = _write(tmp_path / "imgs", 24, size=(16, 12), mode="RGB")
    r = run_cli("train", str(imgs), "--out", str(tmp_path / "run"), *_sets(*SMALL))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "folder preset" in r.stdout and "data.resolution=0: native 16x12" in r.stdout
    assert "augment.p=1.0" in r.stdout and "optim" not in r.stdout  # the lr schedule is the preset's own
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "preset" and any("24 images" in c for c in log[0]["choices"])
    ticks = [x for x in log if x["event"] == "tick"]
    assert len(ticks) == 2 and "aug_p" in ticks[-1]
    g = ganforge.load(tmp_path / "run")
    assert g.sample(3, seed=0).shape == (3, 12, 16, 3)  # non-square kept, RGB


# ---- the bad-input catalogue ---------------------------------------------------------------------------

def _png_header_only(w, h):
    """A PNG that declares w x h pixels and holds none: the shape of a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def _catalogue(d):
    cases = {}
    (d / "empty" / "sub").mkdir(parents=True)
    (d / "empty" / "notes.txt").write_text("no images here")
    cases["empty"] = ([str(d / "empty")], ["no images", "check the path"])
    _write(d / "one", 1)
    cases["one image"] = ([str(d / "one")], ["only 1 image(s)", "at least 8"])
    _write(d / "text", 12)
    (d / "text" / "fake.png").write_text("this is not a PNG")
    cases["non-image named .png"] = ([str(d / "text")], ["fake.png: cannot read this image", "skip_corrupt"])
    _write(d / "trunc", 12)
    good = (d / "trunc" / "0-0000.png").read_bytes()
    (d / "trunc" / "0-0000.png").write_bytes(good[: len(good) // 2])
    cases["truncated"] = ([str(d / "trunc")], ["0-0000.png: cannot read this image"])
    _write(d / "bomb", 12)
    (d / "bomb" / "zz-bomb.png").write_bytes(_png_header_only(30000, 30000))
    cases["decompression bomb"] = ([str(d / "bomb")], ["zz-bomb.png: cannot read this image", "DecompressionBomb"])
    _write(d / "loop", 12)
    (d / "loop" / "a.png").symlink_to(d / "loop" / "b.png")
    (d / "loop" / "b.png").symlink_to(d / "loop" / "a.png")
    cases["symlink loop"] = ([str(d / "loop")], ["dangling or looping link"])
    cases["missing"] = ([str(d / "nowhere")], ["nowhere: no such file or directory", "a folder of images"])
    cases["missing path"] = (["folder", "--set", f"data.path={d / 'nowhere'}"], ["does not exist"])
    cases["no path"] = (["folder"], ["data.path: the folder preset needs a directory"])
    return cases


CASES = ["empty", "one image", "non-image named .png", "truncated", "decompression bomb", "symlink loop",
         "missing", "missing path", "no path"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return d, _catalogue(d)


@pytest.mark.parametrize("case", CASES)
def test_bad_folders_give_one_clear_line_and_leave_nothing(catalogue, case):
    d, cases = catalogue
    args, fragments = cases[case]
    out = d / f"run-{case.replace(' ', '-')}"
    one_line_error(run_cli("train", *args, "--out", str(out), *_sets(*SMALL)), *fragments)
    assert not out.exists()


def test_mixed_sizes_modes_and_exif_rotation_train(tmp_path):
    d = tmp_path / "mixed"
    _write(d, 4, size=(20, 10), mode="L")
    _write(d, 4, size=(24, 12), mode="RGB", seed=1)
    _write(d, 4, size=(20, 10), mode="RGBA", seed=2)
    Image.fromarray(np.zeros((10, 20), np.uint8)).convert("P").save(d / "p.png")
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(np.full((10, 20), 40000, np.uint16)).save(d / "grey16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 10x20 (W x H) shows as 20x10
    Image.fromarray(np.zeros((20, 10, 3), np.uint8)).save(d / "rotated.jpg", exif=exif.tobytes())
    s = survey(d)
    assert s.n == 16 and not s.same_size and s.kinds == {"L", "RGB", "RGBA"}
    assert (20, 10) in s.sizes and (10, 20) not in s.sizes  # the EXIF rotation is read
    notes = []
    cfg = resolve(str(d), SMALL, notes)
    assert (cfg.data.resolution, cfg.data.width) == (8, 16), notes  # short side 8 (a power of two), 2:1 kept
    run = ganforge.train(cfg, out=tmp_path / "run", progress=False)
    assert ganforge.load(run).sample(2, seed=0).shape == (2, 8, 16, 3)  # RGB: alpha composited, grey repeated


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    """Permission errors (root reads everything, so simulated): the file is named, with the way out."""
    d = _write(tmp_path / "imgs", 12)
    import ganforge.utils.images as images
    real_decode = images.decode

    def decode(path):
        if str(path).endswith("0-0003.png"):
            raise PermissionError(13, "Permission denied")
        return real_decode(path)

    monkeypatch.setattr(images, "decode", decode)
    with pytest.raises(ganforge.GanforgeError, match=r"0-0003.png: cannot read this image \(PermissionError.*"
                                                     r"skip_corrupt=true"):
        ganforge.train(str(d), overrides=SMALL, out=tmp_path / "run", progress=False)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ganforge.train(str(d), overrides=SMALL + ["data.skip_corrupt=true"], out=tmp_path / "run2", progress=False)


def test_a_folder_that_changes_is_not_silently_reused(tmp_path):
    d = _write(tmp_path / "imgs", 12)
    over = SMALL + [f"data.cache_dir={tmp_path / 'cache'}"]
    run = ganforge.train(str(d), overrides=over, out=tmp_path / "run", progress=False)
    first = list_checkpoints(run)[-1]
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 12), 200, np.uint8)).save(buf, format="PNG")
    (d / "0-0005.png").write_bytes(buf.getvalue())  # one image replaced
    r = run_cli("train", "--resume", str(run), *_sets("train.kimg=0.128"))
    one_line_error(r, "training data changed", "--allow-data-change")
    assert list_checkpoints(run)[-1] == first
    # the preprocessed cache of the old contents was not reused: the new contents have a cache of their own
    assert len(list((tmp_path / "cache" / "folder").glob("*.npz"))) == 2


def test_a_short_budget_on_an_unlabelled_folder_skips_the_label_free_tick_metrics(tmp_path):
    """The self-supervised network costs minutes on a CPU: under a 30-minute budget it is left to `ganforge eval`."""
    _write(tmp_path / "imgs", 40)
    notes = []
    cfg = resolve(str(tmp_path / "imgs"), ["train.device=cpu"], notes, minutes=10)
    assert cfg.train.metrics == [] and any("--minutes budget under 30" in n for n in notes)
    assert resolve(str(tmp_path / "imgs"), ["train.device=cpu"], minutes=60).train.metrics == ["ssl_fd", "diversity"]
    assert resolve(str(tmp_path / "imgs"), ["train.metrics=[ssl_fd]"], minutes=10).train.metrics == ["ssl_fd"]
