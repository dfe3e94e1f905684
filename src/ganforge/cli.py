"""Command line: thin. Parse -> Config -> call the library. User errors print one line and exit 2.

Library modules are imported inside the command functions: `ganforge --help` and `ganforge report` stay fast
and do not import torch. This top layer is the only place in the package that imports its own modules lazily.
"""
from __future__ import annotations

import argparse
import sys

from .errors import GanforgeError


def _train(a: argparse.Namespace) -> None:
    from .training.loop import train

    overrides = list(a.set or [])
    if a.device:
        overrides.append(f"train.device={a.device}")
    if a.resume:
        if a.config:
            raise GanforgeError("give either a preset/config or --resume RUN_DIR, not both")
        run_dir = train(resume=a.resume, overrides=overrides, out=a.out, minutes=a.minutes, progress=not a.quiet,
                        allow_data_change=a.allow_data_change)
    else:
        run_dir = train(a.config, overrides=overrides, out=a.out, minutes=a.minutes, progress=not a.quiet)
    print(f"run directory: {run_dir}")


def _sample(a: argparse.Namespace) -> None:
    import numpy as np

    from .sampling import check_output, load, save_samples

    if a.n <= 0:
        raise GanforgeError(f"--n must be positive, got {a.n}")
    check_output(a.out, a.overwrite)  # before the work, so that a refused name costs nothing
    g = load(a.run_dir, device=a.device)
    labels, cols = None, None
    if a.cls is not None:
        if not g.conditional:
            raise GanforgeError("--class: this generator is not class-conditional (trained with "
                                "model.conditional=false)")
        if a.cls == "all":  # a row per class: n samples of each
            labels, cols = np.repeat(np.arange(g.n_classes), a.n), a.n
        else:
            names = g.meta["data"].get("class_names") or []
            k = names.index(a.cls) if a.cls in names else int(a.cls) if a.cls.lstrip("-").isdigit() else None
            if k is None:
                raise GanforgeError(f"--class {a.cls!r}: give a class number 0..{g.n_classes - 1}, a class name "
                                    f"({', '.join(map(str, names[:10]))}{', ...' if len(names) > 10 else ''}) or all")
            labels = np.full(a.n, k)
    n = len(labels) if labels is not None else a.n
    x = g.sample(n, seed=a.seed, truncation=a.truncation, labels=labels)
    if g.conditional and labels is None:
        labels = g.labels_for(n, None, a.seed).numpy()
    out = save_samples(x, g.kind, a.out, overwrite=a.overwrite, labels=labels, cols=cols)
    print(f"wrote {n} samples to {out}")


def _check_latent_outputs(a: argparse.Namespace, what: str) -> None:
    """--out (a .npz) and --grid of project / encode, checked before any work: a refused name costs nothing."""
    from .sampling import check_output

    if not a.out.endswith(".npz"):
        raise GanforgeError(f"--out {a.out!r}: {what} written as a .npz file")
    check_output(a.out, a.overwrite)
    if a.grid:
        check_output(a.grid, a.overwrite, "--grid")


def _write_pairs(g, x, rec, grid: str) -> None:
    """--grid: each input beside its reconstruction (up to 32 pairs)."""
    import numpy as np

    from .utils.images import save_image_grid

    if g.kind != "image":
        raise GanforgeError("--grid: a side-by-side grid needs images; the reconstructions are in the .npz")
    n = min(len(x), 32)
    pair = np.stack([np.asarray(x[:n]), rec[:n]], 1).reshape(2 * n, *rec.shape[1:])
    save_image_grid(pair, grid, scale=1, cols=8 if n >= 4 else 2 * n)
    print(f"wrote {grid} (each input followed by its reconstruction)")


def _read_for(g, path: str):
    from .inversion import read_items

    return read_items(path, g.kind, g.shape)


def _project(a: argparse.Namespace) -> None:
    from .inversion import check_settings
    from .sampling import load, save_npz

    _check_latent_outputs(a, "the projection is")
    check_settings(a.steps, a.lr, a.starts)
    g = load(a.run_dir, device=a.device)
    x = _read_for(g, a.input)
    p = g.project(x, steps=a.steps, lr=a.lr, starts=a.starts, seed=a.seed)
    save_npz(a.out, z=p.z, reconstructions=p.reconstructions, mse=p.mse, start_mse=p.start_mse)
    print(f"projected {len(p.z)} item(s): mean squared error {p.mse.mean():.4g} in model range "
          f"(best start: {p.start_mse.mean():.4g}); wrote z, reconstructions, mse to {a.out}")
    if a.grid:
        _write_pairs(g, x, p.reconstructions, a.grid)


def _encoder(a: argparse.Namespace) -> None:
    from .editing import fit_encoder
    from .inversion import EncoderSettings

    st = EncoderSettings(steps=a.steps, batch=a.batch, lr=a.lr, real_weight=a.real_weight)
    st.check()

    def progress(step: int, total: int) -> None:
        if not a.quiet:
            print(f"\r  step {step}/{total}", end="" if step < total else "\n", flush=True)

    info = fit_encoder(a.run_dir, st, seed=a.seed, device=a.device, progress=progress)
    print(f"fitted an encoder in {info['seconds']:.0f} s on {info['items']} images of {info['dataset']}; on "
          f"{info['evaluated_on']}: mean squared error {info['mse_encoder']:.4g} (E alone), "
          f"{info[next(k for k in info if k.startswith('mse_refined'))]:.4g} (E + refinement)")
    for f in info.get("figures", []):
        print(f"wrote {f}")
    print(f"saved beside the generator: {a.run_dir}/generator/encoder.safetensors (used by encode, edit, project)")


def _encode(a: argparse.Namespace) -> None:
    import numpy as np

    from .sampling import load, save_npz

    _check_latent_outputs(a, "the latents are")
    if a.refine < 0:
        raise GanforgeError(f"--refine: a number of optimisation steps >= 0, got {a.refine}")
    g = load(a.run_dir, device=a.device)
    if g.kind == "text":
        return _encode_text(g, a)
    g.require_encoder()
    x = _read_for(g, a.input)
    z = g.encode(x, refine=a.refine, seed=a.seed)
    rec = g.decode(z)
    mse = ((rec.astype(np.float64) - np.asarray(x, np.float64)) / (127.5 if g.kind == "image" else 1.0)) ** 2
    mse = mse.reshape(len(z), -1).mean(1).astype(np.float32)
    save_npz(a.out, z=z, reconstructions=rec, mse=mse)
    how = f"E + {a.refine} refinement steps" if a.refine else "E alone"
    print(f"encoded {len(z)} item(s) ({how}): mean squared error {mse.mean():.4g} in model range; wrote z, "
          f"reconstructions, mse to {a.out}")
    if a.grid:
        _write_pairs(g, x, rec, a.grid)


def _encode_text(g, a: argparse.Namespace) -> None:
    """A latent text generator (arae): the codes of the lines of a .txt file (or a .npz of `texts`), and the
    decoder's reading of each code."""
    from pathlib import Path

    import numpy as np

    from .evaluation import read_text_samples
    from .sampling import save_npz

    g._autoencoder()  # a clear error for a text family without one
    if a.refine:
        raise GanforgeError("--refine: a text generator's codes come from its encoder alone (discrete tokens cannot "
                            "be refined by gradient descent); leave --refine out")
    if a.grid:
        raise GanforgeError("--grid: a side-by-side grid needs images; the reconstructions are in the .npz")
    path = Path(a.input)
    if not path.is_file():
        raise GanforgeError(f"{a.input}: no such file; give a .txt file (one text per line) or a .npz of `texts`")
    lines = read_text_samples(path)
    codes = g.encode_text(lines)
    rec = g.decode_codes(codes)
    same = np.array([x == y for x, y in zip(lines, rec)], bool)
    save_npz(a.out, codes=codes, texts=np.array(lines, dtype=str), reconstructions=np.array(rec, dtype=str),
             exact=same)
    print(f"encoded {len(lines)} line(s) to codes of dimension {codes.shape[1]}; the decoder reads "
          f"{same.mean() if len(same) else 0:.1%} of them back exactly; wrote codes, texts, reconstructions, exact "
          f"to {a.out}")


def _edit(a: argparse.Namespace) -> None:
    import numpy as np

    from .editing import class_directions, edit, interpolate, run_data
    from .sampling import check_output, load
    from .utils.images import save_image_grid

    if not a.out.endswith(".png"):
        raise GanforgeError(f"--out {a.out!r}: the edit is written as a .png grid")
    if (a.to is None) == (a.toward is None):
        raise GanforgeError("say what to do: --to IMAGES (interpolate to other real images) or --toward CLASS "
                            "(move along a class direction)")
    if a.steps < 2:
        raise GanforgeError(f"--steps: at least 2, got {a.steps}")
    check_output(a.out, a.overwrite)
    g = load(a.run_dir, device=a.device)
    if g.kind != "image":
        raise GanforgeError("ganforge edit draws image grids; this generator makes vectors (use the Python API: "
                            "ganforge.editing.interpolate / edit)")
    x = _read_for(g, a.input)
    if a.to is not None:
        y = _read_for(g, a.to)
        if len(y) == 1 and len(x) > 1:
            y = np.repeat(y, len(x), 0)
        if len(x) == 1 and len(y) > 1:
            x = np.repeat(x, len(y), 0)
        grid = interpolate(g, x, y, steps=a.steps, refine=a.refine)
        what = f"{len(grid)} interpolation(s): input, {a.steps} steps, target"
    else:
        data, _ = run_data(g)
        means = class_directions(g, data)   # refuses unlabelled data
        names = [str(n) for n in (data.class_names or range(len(means)))]

        def cls(v: str) -> int:
            k = names.index(v) if v in names else int(v) if v.lstrip("-").isdigit() else -1
            if not 0 <= k < len(means):
                raise GanforgeError(f"class {v!r}: give a class number or name of {data.name} "
                                    f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
            return k

        b = cls(a.toward)
        src = means.mean(0) if a.source is None else means[cls(a.source)]
        grid = edit(g, x, means[b] - src, np.linspace(0, a.strength, a.steps), refine=a.refine)
        what = (f"{len(grid)} edit(s) toward class {names[b]}"
                f"{'' if a.source is None else f' from class {a.source}'}: input, then strength 0..{a.strength}")
    save_image_grid(grid.reshape(-1, *grid.shape[2:]), a.out, cols=grid.shape[1])
    print(f"wrote {a.out} ({what}; a row per input)")


def _eval(a: argparse.Namespace) -> None:
    from .evaluation import evaluate_target
    from .sampling import check_output
    from .utils.files import write_json

    if a.json:
        check_output(a.json, a.overwrite, "--json")
    metrics = [m for m in (a.metrics or "").split(",") if m] or None
    results = evaluate_target(a.target, metrics, n=a.n, seed=a.seed, device=a.device, data_overrides=a.set)
    for name, r in results.items():
        vals = "  ".join(f"{k}={v:.6g}" for k, v in r.values.items())
        print(f"{name:10s} {vals}")
        for grid in r.protocol.get("grids", []):
            print(f"{'':10s} closest pairs (sample, nearest training image): {grid}")
    if a.json:
        write_json(a.json, {k: {"values": r.values, "protocol": r.protocol} for k, r in results.items()})
        print(f"wrote {a.json}")


def _presets(a: argparse.Namespace) -> None:
    from .components import describe_components
    from .config import load_preset, preset_names

    for name in preset_names():  # one line each, as scripts may read them
        cfg = load_preset(name)
        print(f"{name:10s} {cfg.description}")
    if a.components:
        print("\ncomponents (--set KEY=NAME), with their own options (--set ...):")
        print(describe_components())
    else:
        print("\n(`ganforge presets --components` lists every dataset, model, loss, optimiser, schedule and metric,"
              " with their own options)")


def _report(a: argparse.Namespace) -> None:
    from .report import write_report

    out = write_report(a.run_dir, a.out, overwrite=a.overwrite)
    print(f"wrote {out}")


def _metric_list() -> str:
    from .metrics import METRICS

    return "metrics:\n" + "\n".join(f"  {n:10s} {METRICS.doc(n)}" for n in METRICS.names())


def _component_list() -> str:
    from .components import describe_components

    return "components (--set KEY=NAME) and their own options:\n" + describe_components()


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog is computed when help is printed (it lists registered components, which
    needs their modules imported: too slow for every command)."""

    def __init__(self, *args, epilog_fn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epilog_fn = epilog_fn

    def format_help(self) -> str:
        if self.epilog_fn is not None:
            self.epilog = self.epilog_fn()
        return super().format_help()


def _latent_parser(sub, name: str, help_: str, out_help: str) -> argparse.ArgumentParser:
    """project and encode: the arguments they share (data in, latents out, an optional pair grid)."""
    p = sub.add_parser(name, help=help_)
    p.add_argument("run_dir")
    p.add_argument("input", help="IMAGES.npz | VECTORS.npy | an image file | a folder of images (encode, an arae "
                                 "text run: LINES.txt, one text per line)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--grid", help="also write a PNG with each input beside its reconstruction (images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="replace --out / --grid if they exist")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge", description="Train, evaluate and sample GANs.")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module first, so that the models, losses, datasets or metrics it registers exist")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a GAN (default preset: digits)", epilog_fn=_component_list,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", nargs="?", default=None, help="preset name (see `ganforge presets`) or CONFIG.yaml")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.kimg=50")
    t.add_argument("--out", help="run directory (default runs/<preset>-NNN); with --resume: continue into this new "
                                 "directory, leaving the source untouched")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run (or a checkpoints/ckpt-*.pt) exactly")
    t.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue although the training data changed since the checkpoint")
    t.add_argument("--minutes", type=float, help="stop cleanly after this much wall time (checkpoint + export)")
    t.add_argument("--device", help="shorthand for --set train.device=...")
    t.add_argument("--quiet", action="store_true", help="no progress display")
    t.set_defaults(fn=_train)

    s = sub.add_parser("sample", help="sample a trained generator (no dataset needed)")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--out", required=True,
                   help="OUT.npz | OUT.png | DIR; text: OUT.txt (one sample per line) | OUT.npz")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--truncation", type=float, default=None,
                   help="draw latents closer to the prior's centre: > 0 (normal prior), in (0, 1] (uniform)")
    s.add_argument("--class", dest="cls", metavar="K|NAME|all",
                   help="a class-conditional generator: samples of class K (a number or a class name), or `all` "
                        "for --n samples of every class (a row per class in a .png grid)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.add_argument("--device", default="cpu")
    s.set_defaults(fn=_sample)

    j = _latent_parser(sub, "project", "find latents whose samples match given images or vectors (inversion)",
                       "OUT.npz: z, reconstructions, mse, start_mse")
    j.add_argument("--steps", type=int, default=300, help="Adam steps on z")
    j.add_argument("--starts", type=int, default=16, help="random starting latents per item; the best one is kept")
    j.add_argument("--lr", type=float, default=0.05)
    j.set_defaults(fn=_project)

    en = sub.add_parser("encoder", help="fit an encoder (images -> latents) to a trained generator, which stays "
                                        "as it is")
    en.add_argument("run_dir")
    en.add_argument("--steps", type=int, default=2000, help="Adam steps (each: --batch latents and real images)")
    en.add_argument("--batch", type=int, default=64)
    en.add_argument("--lr", type=float, default=1e-3)
    en.add_argument("--real-weight", type=float, default=1.0,
                    help="weight of the reconstruction of real images through G; 0 = learn from G's own pairs only")
    en.add_argument("--seed", type=int, default=0)
    en.add_argument("--device", default="cpu")
    en.add_argument("--quiet", action="store_true")
    en.set_defaults(fn=_encoder)

    ec = _latent_parser(sub, "encode", "latents of images or vectors from the encoder (optionally refined); for "
                        "an arae text run, the codes of the lines of a .txt file",
                        "OUT.npz: z, reconstructions, mse (text: codes, texts, reconstructions, exact)")
    ec.add_argument("--refine", type=int, default=0,
                    help="then this many Adam steps of projection from E(x) (50: close to `project` at ~1/5 the cost)")
    ec.set_defaults(fn=_encode)

    ed = sub.add_parser("edit", help="interpolate between real images, or move them along a class direction")
    ed.add_argument("run_dir")
    ed.add_argument("input", help="IMAGES.npz | an image file | a folder of images")
    ed.add_argument("--to", help="images to interpolate to (one, or as many as the inputs)")
    ed.add_argument("--toward", metavar="CLASS", help="a class (number or name) of the run's labelled data")
    ed.add_argument("--from", dest="source", metavar="CLASS",
                    help="with --toward: the inputs' class (default: the mean of all classes)")
    ed.add_argument("--strength", type=float, default=1.0, help="with --toward: the largest step along the direction")
    ed.add_argument("--steps", type=int, default=8, help="columns between input and target / along the direction")
    ed.add_argument("--refine", type=int, default=50, help="refinement steps of each encoding (0: E alone)")
    ed.add_argument("--out", required=True, help="OUT.png: a row per input")
    ed.add_argument("--device", default="cpu")
    ed.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    ed.set_defaults(fn=_edit)

    e = sub.add_parser("eval", help="metrics of a run (or one of its checkpoints), a samples .npz or (text) a samples "
                       ".txt against its dataset",
                       epilog_fn=_metric_list, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("target", help="RUN_DIR, RUN_DIR/checkpoints/ckpt-<N>.pt (that checkpoint's generator), "
                   "SAMPLES.npz or (text) SAMPLES.txt")
    e.add_argument("--metrics", help="comma-separated metric names (default: the dataset's sensible set)")
    e.add_argument("--n", type=int, default=None, help="number of generated samples (and real items)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--set", action="append", metavar="data.KEY=VALUE",
                   help="which dataset to compare with; metrics.NAME.OPTION=VALUE sets a metric's own option")
    e.add_argument("--json", help="also write the results with their protocols to this file")
    e.add_argument("--overwrite", action="store_true", help="replace --json if it exists")
    e.set_defaults(fn=_eval)

    r = sub.add_parser("report", help="one self-contained HTML report of a run")
    r.add_argument("run_dir")
    r.add_argument("--out", default=None, help="HTML path (default RUN_DIR/report.html)")
    r.add_argument("--overwrite", action="store_true", help="replace --out even if it is not a ganforge report")
    r.set_defaults(fn=_report)

    pr = sub.add_parser("presets", help="list the built-in presets (and, with --components, every component)")
    pr.add_argument("--components", action="store_true",
                    help="also list the registered components and their own options (after any --import)")
    pr.set_defaults(fn=_presets)
    return p


def _import_plugins(argv: list[str]) -> None:
    """--import MODULE, before the full parse: `--help` then lists what the plugins register."""
    import importlib

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--import", dest="imports", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` has it
    for mod in known.imports:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise GanforgeError(f"--import {mod}: cannot import it ({e}); is it on PYTHONPATH?") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _import_plugins(argv)
        args = build_parser().parse_args(argv)
        args.fn(args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    finally:
        if "torch" in sys.modules:  # nothing to clean up where torch was never imported
            from .utils import distributed

            distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
