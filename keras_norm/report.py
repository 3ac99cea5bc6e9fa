"""Turns the run folders under `artifacts/runs/` into graphs, error grids and result tables.

Outputs (in the artifacts folder): graph1_test_loss.png, graph2_test_accuracy.png,
training_curves.png, misclassified_<run>.png (one per run name, its lowest seed), report.md and
results.json. Runs of one name with several seeds are drawn as the seed mean with a min-max band.

    python -m keras_norm.report [ARTIFACTS_DIR] [RUN_NAME ...]
"""

import collections
import glob
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_norm import fileio  # noqa: E402
from keras_norm.errors import KerasNormError  # noqa: E402

DPI = 150
TARGET = 99.4  # percent


class Run:
    """One finished (or failed) run folder: its config, history and metrics."""

    def __init__(self, folder):
        self.folder = folder
        self.config = fileio.read_json(os.path.join(folder, "config.json"))
        self.flags = self.config["flags"]
        self.name = self.config["name"]
        self.seed = int(self.flags["seed"])
        metrics_path = os.path.join(folder, "metrics.json")
        self.metrics = fileio.read_json(metrics_path) if os.path.exists(metrics_path) else {"status": "unfinished"}
        self.status = self.metrics.get("status", "unfinished")
        self.history = []
        if self.status == "finished":
            rows = fileio.read_json(os.path.join(folder, "history.json"))["epochs"]
            for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
                if not rows or any(key not in r for r in rows):
                    raise ValueError(f"history.json lacks {key!r}")
            self.history = rows

    def series(self, key):
        return np.array([r[key] for r in self.history], dtype=float)


def load_runs(artifacts_dir, log=None):
    """All run folders; a folder that cannot be read is reported on stderr and skipped."""
    log = log or (lambda m: print(m, file=sys.stderr))
    runs = []
    for folder in sorted(glob.glob(os.path.join(artifacts_dir, "runs", "*"))):
        if not os.path.isdir(folder) or not os.path.exists(os.path.join(folder, "config.json")):
            continue
        try:
            runs.append(Run(folder))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log(f"report: skipping {os.path.basename(folder)}: {type(e).__name__}: {e}")
    return runs


def label(run):
    """Legend text: norm + regularization + parameters."""
    f = run.flags
    norm = {"bn": "BatchNorm", "gn": f"GroupNorm({f['groups']})", "ln": "LayerNorm", "in": "InstanceNorm",
            "none": "no norm"}[f["norm"]]
    if f["norm"] == "ln" and f.get("ln_impl") == "layer":
        norm = "LayerNorm (per-activation affine)"
    reg = [f"L1 {f['l1']:g}" if f["l1"] else "", f"L2 {f['l2']:g}" if f["l2"] else ""]
    reg = " + ".join(r for r in reg if r) or "no reg."
    return f"{norm} + {reg} ({run.config['params']:,} params)"


def group(runs):
    """{name: [runs sorted by seed]} over finished runs, names sorted."""
    groups = collections.defaultdict(list)
    for r in runs:
        if r.status == "finished":
            groups[r.name].append(r)
    return {n: sorted(groups[n], key=lambda r: r.seed) for n in sorted(groups)}


def _stack(runs, key, scale=1.0):
    n = min(len(r.history) for r in runs)
    return np.stack([r.series(key)[:n] for r in runs]) * scale


def _describe(groups):
    any_run = next(iter(groups.values()))[0]
    ds = any_run.config["dataset"]
    epochs = max(len(r.history) for g in groups.values() for r in g)
    seeds = sorted({len(g) for g in groups.values()})
    seed_text = f", mean of {seeds[0]} seeds (band: min-max)" if seeds == [seeds[-1]] and seeds[0] > 1 else ""
    return f"{ds['name']} {ds['train_size']:,} train / {ds['test_size']:,} test, {epochs} epochs{seed_text}"


def short_label(run):
    f = run.flags
    reg = " + ".join(x for x in (f"L1 {f['l1']:g}" if f["l1"] else "", f"L2 {f['l2']:g}" if f["l2"] else "") if x)
    return f"{f['norm'].upper()}" + (f" + {reg}" if reg else "")


def _plot_metric(ax, groups, key, percent, mark="max", zoom=False, target=False, long_labels=True):
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lows, highs = [], []
    for i, (name, runs) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        values = _stack(runs, key, 100.0 if percent else 1.0)
        mean = values.mean(axis=0)
        epochs = np.arange(1, len(mean) + 1)
        best = int(np.argmax(mean) if mark == "max" else np.argmin(mean))
        text = f"{mean[best]:.2f}%" if percent else f"{mean[best]:.4f}"
        # The best epoch's value goes into the legend: annotations next to the curves collide.
        name = label(runs[0]) if long_labels else short_label(runs[0])
        ax.plot(epochs, mean, color=color, lw=1.6,
                label=f"{name}: {'best' if mark == 'max' else 'min'} {text} @ epoch {epochs[best]}")
        if len(runs) > 1:
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.18, lw=0)
        ax.plot(epochs[best], mean[best], "o", color=color, ms=6, mec="black", mew=0.6)
        # Zoom on the second half of the mean curve, where the 99.0-99.6% differences live.
        lows.append(mean[len(mean) // 2:].min())
        highs.append(values[:, len(mean) // 2:].max())
    if zoom and percent:
        lo = max(0.0, math.floor(min(lows) * 10) / 10 - 0.1)
        hi = min(100.0, max(highs) + 0.15)
        ax.set_ylim(lo, hi)
        if target and lo < TARGET < hi:
            ax.axhline(TARGET, color="grey", ls="--", lw=0.8)
            ax.text(1, TARGET, " 99.4% target", va="bottom", fontsize=7, color="grey")
    if not percent:
        ax.set_yscale("log")  # losses fall by 20x; on a log axis late differences stay visible
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def plot_single(path, groups, key, ylabel, title, percent=False, mark="max", zoom=False):
    fig, ax = plt.subplots(figsize=(8, 5))
    _plot_metric(ax, groups, key, percent, mark, zoom, target=key == "val_accuracy")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{_describe(groups)}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right" if percent else "upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_training_curves(path, groups):
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    specs = [("loss", "training loss", False, "min"), ("val_loss", "test loss", False, "min"),
             ("accuracy", "training accuracy (%)", True, "max"), ("val_accuracy", "test accuracy (%)", True, "max")]
    for ax, (key, ylabel, percent, mark) in zip(axes.ravel(), specs):
        _plot_metric(ax, groups, key, percent, mark, zoom=percent, target=key == "val_accuracy", long_labels=False)
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel, fontsize=10)
        ax.legend(fontsize=7, loc="lower right" if percent else "upper right")
    fig.suptitle(f"Training and test curves: {', '.join(groups)}\n{_describe(groups)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_misclassified(path, run, images, wrong):
    """The first (up to) 10 misclassified test images as a 5x2 grid."""
    fig, axes = plt.subplots(5, 2, figsize=(4.2, 9.6))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), wrong["images"]):
        ax.imshow(images[item["index"]], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"#{item['index']}: true {item['true']}, pred {item['pred']}\np(pred) = {item['prob']:.2f}",
                     fontsize=7.5)
    fig.suptitle(f"{label(run)}, seed {run.seed}\nfirst 10 misclassified test images "
                 f"({wrong['errors']} errors, best epoch)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def misclassified_grids(artifacts_dir, groups, log):
    from keras_norm import data

    cache = {}
    written = []
    for name, runs in groups.items():
        run = runs[0]
        wrong_path = os.path.join(run.folder, "misclassified.json")
        if not os.path.exists(wrong_path):
            log(f"report: no misclassified.json in {os.path.basename(run.folder)}; grid skipped")
            continue
        f = run.flags
        key = (f["data_path"], f["train_limit"], f["test_limit"])
        try:
            if key not in cache:
                cache[key] = data.load(*key).raw_test_images()
        except KerasNormError as e:
            log(f"report: grid for {name} skipped: {e}")
            continue
        path = os.path.join(artifacts_dir, f"misclassified_{name}.png")
        plot_misclassified(path, run, cache[key], fileio.read_json(wrong_path))
        written.append(path)
    return written


def results(groups):
    """results.json content: one entry per run name, lists over seeds."""
    out = []
    for name, runs in groups.items():
        first = runs[0]
        out.append({
            "name": name,
            "norm": first.flags["norm"],
            "l1": first.flags["l1"],
            "l2": first.flags["l2"],
            "params": first.config["params"],
            "dataset": first.config["dataset"]["name"],
            "train_size": first.config["dataset"]["train_size"],
            "test_size": first.config["dataset"]["test_size"],
            "epochs": len(first.history),
            "batch_size": first.flags["batch_size"],
            "seeds": [r.seed for r in runs],
            "final_test_accuracy": [round(float(r.series("val_accuracy")[-1]), 6) for r in runs],
            "best_test_accuracy": [round(float(r.series("val_accuracy").max()), 6) for r in runs],
            "min_test_loss": [round(float(r.series("val_loss").min()), 6) for r in runs],
            "epoch_seconds": [round(float(r.series("seconds").mean()), 3) for r in runs],
        })
    return {"runs": out}


def _pm(values, scale=100.0, digits=2):
    v = np.asarray(values) * scale
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def report_markdown(groups, failed, suite):
    lines = ["# Results", ""]
    if groups:
        lines += [f"Data: {_describe(groups)}. Mean ± std over seeds (population std); "
                  "accuracies in %, measured on the test set after every epoch.", ""]
        lines += ["| run | norm | l1 | l2 | params | seeds | final-epoch test acc | best-epoch test acc | "
                  "min test loss | first epoch ≥ 99.4% | near-zero weights (abs < 1e-3) | mean abs weight | s/epoch | dataset |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, runs in groups.items():
            f = runs[0].flags
            first_hits = [r.metrics.get("first_epoch_at_99.4") for r in runs]
            weights = [r.metrics.get("weights") or {} for r in runs]
            near_zero = [w.get("near_zero_fraction") for w in weights]
            mean_abs = [w.get("mean_abs_weight") for w in weights]
            near_zero = _pm(near_zero, 100, 1) + "%" if None not in near_zero else "n/a"
            mean_abs = _pm(mean_abs, 1, 3) if None not in mean_abs else "n/a"
            lines.append(
                f"| {name} | {f['norm']} | {f['l1']:g} | {f['l2']:g} | {runs[0].config['params']:,} | "
                f"{', '.join(str(r.seed) for r in runs)} | "
                f"{_pm([r.series('val_accuracy')[-1] for r in runs], digits=3)} | "
                f"{_pm([r.series('val_accuracy').max() for r in runs], digits=3)} | "
                f"{_pm([r.series('val_loss').min() for r in runs], 1, 4)} | "
                f"{', '.join('—' if h is None else str(h) for h in first_hits)} | {near_zero} | {mean_abs} | "
                f"{_pm([r.series('seconds').mean() for r in runs], 1, 1)} | "
                f"{runs[0].config['dataset']['name']} |")
        lines += ["", f"Bar: final-epoch test accuracy ≥ {TARGET:.2f}% as the seed mean, < 8,000 parameters:", ""]
        for name, runs in groups.items():
            mean = 100 * float(np.mean([r.series("val_accuracy")[-1] for r in runs]))
            ok = mean >= TARGET and runs[0].config["params"] < 8000
            lines.append(f"- {name}: {mean:.3f}%, {runs[0].config['params']:,} params: "
                         f"{'meets the bar' if ok else 'misses the bar'}")
        lines += ["", "Per seed (final-epoch / best-epoch test accuracy, %):", ""]
        for name, runs in groups.items():
            per = ", ".join(f"seed {r.seed}: {100 * r.series('val_accuracy')[-1]:.2f} / "
                            f"{100 * r.series('val_accuracy').max():.2f}" for r in runs)
            lines.append(f"- {name}: {per}")
    multi = {n: rs for n, rs in groups.items() if len(rs) > 1}
    if len(multi) > 1:
        lines += ["", "Gaps between runs (final-epoch test accuracy, percentage points). A gap counts as "
                  "real only if the two seed ranges (min–max) do not overlap:", "",
                  "| run A | run B | mean A − mean B | range A | range B | ranges overlap? |", "|---|---|---|---|---|---|"]
        names = list(multi)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                va = np.array([100 * r.series("val_accuracy")[-1] for r in multi[a]])
                vb = np.array([100 * r.series("val_accuracy")[-1] for r in multi[b]])
                overlap = va.min() <= vb.max() and vb.min() <= va.max()
                lines.append(f"| {a} | {b} | {va.mean() - vb.mean():+.2f} | {va.min():.2f}–{va.max():.2f} | "
                             f"{vb.min():.2f}–{vb.max():.2f} | {'yes: within noise' if overlap else 'no: a real gap'} |")
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r.name} seed {r.seed}: {r.metrics.get('reason', r.status)}" for r in failed]
    if suite:
        lines += ["", f"Suite `{suite['suite']}`: wall time {suite['wall_seconds'] / 60:.1f} min with "
                  f"{suite['parallel_jobs']} parallel training processes ({suite['trained_now']} runs trained "
                  "in that invocation)."]
    return "\n".join(lines) + "\n"


def dataset_key(run):
    d = run.config.get("dataset", {})
    return d.get("name"), d.get("train_size"), d.get("test_size")


def select(runs, names, artifacts_dir, prefer_suite, log=None):
    """The runs to compare: `names` if given, else the latest suite's, else all runs of one dataset
    (the one most runs used; runs on another dataset are left out with a note)."""
    log = log or (lambda m: print(m, file=sys.stderr))
    suite_path = os.path.join(artifacts_dir, "suite.json")
    suite = fileio.read_json(suite_path) if os.path.exists(suite_path) else None
    explicit = bool(names)
    if not names and prefer_suite and suite:
        names = suite["runs"]
    if names:
        unknown = sorted(set(names) - {r.name for r in runs})
        if unknown:
            raise KerasNormError(f"--runs names unknown run(s): {', '.join(unknown)}")
        runs = [r for r in runs if r.name in set(names)]
    datasets = collections.Counter(dataset_key(r) for r in runs)
    if len(datasets) > 1:
        if explicit:
            raise KerasNormError("--runs mixes datasets (" + ", ".join(sorted(str(k[0]) for k in datasets))
                                 + "); report the runs of one dataset at a time")
        keep = max(sorted(datasets, key=str), key=lambda k: datasets[k])
        left = sorted({r.name for r in runs if dataset_key(r) != keep})
        log(f"report: left out {', '.join(left)} (trained on another dataset than the other runs); "
            f"pass --runs to report them")
        runs = [r for r in runs if dataset_key(r) == keep]
    return runs, suite


def render(artifacts_dir, runs=(), prefer_suite=True, log=None):
    """Renders everything; returns the list of files written."""
    log = log or (lambda m: print(m, file=sys.stderr))
    if not os.path.isdir(os.path.join(artifacts_dir, "runs")):
        raise KerasNormError(f"no runs under {os.path.join(artifacts_dir, 'runs')}; train a model first")
    fileio.check_writable(artifacts_dir)
    selected, suite = select(load_runs(artifacts_dir, log), list(runs), artifacts_dir, prefer_suite, log)
    groups = group(selected)
    failed = [r for r in selected if r.status == "failed"]
    if not groups:
        raise KerasNormError("no finished runs to report")
    written = []

    def out(name):
        written.append(os.path.join(artifacts_dir, name))
        return written[-1]

    plot_single(out("graph1_test_loss.png"), groups, "val_loss", "test loss (log scale)",
                "Graph 1: test/validation loss per epoch", mark="min")
    plot_single(out("graph2_test_accuracy.png"), groups, "val_accuracy", "test accuracy (%)",
                "Graph 2: test/validation accuracy per epoch", percent=True, zoom=True)
    plot_training_curves(out("training_curves.png"), groups)
    written += misclassified_grids(artifacts_dir, groups, log)
    fileio.write_json(out("results.json"), results(groups))
    fileio.write_text(out("report.md"), report_markdown(groups, failed, suite if prefer_suite else None))
    log(f"report: {len(written)} files written to {artifacts_dir}")
    return written


if __name__ == "__main__":
    try:
        render(sys.argv[1] if len(sys.argv) > 1 else "artifacts", runs=sys.argv[2:])
    except KerasNormError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
