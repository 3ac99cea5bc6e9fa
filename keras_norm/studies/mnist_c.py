"""MNIST-C (`--suite=mnist_c`): the study's models on the benchmark's 15 corruptions of the test set; no training.

Models: every finished run with a `model.keras` of the seeds suite and of the fair comparison (no penalty), by
source (keras_norm/studies/models.py). Corruptions: keras_norm/corruptions.py, at MNIST-C's severities, one fixed
draw. Every BN model is measured as deployed ("frozen") and with its statistics re-estimated on each corrupted set
without labels (keras_norm/adapt.py): from all of its images, and from 256 of them (a fixed draw; the others
evaluated). GN and LN compute each image's own statistics: nothing to adapt.

The mean corruption error (mCE) of a model is the mean over the 15 corruptions of its test error (%), unnormalized,
as MNIST-C reports it. Intervals: over seeds, t on the logit scale (inside [0, 100]); adapted vs frozen is paired
(the same model measured two ways); the norms of one source are compared by Welch's test with Holm's rule over
the pairs. Writes `artifacts/mnist_c.json` (`{"corruptions": {name: {variant: [accuracy per seed]}}, ...}`),
`mnist_c.png` (error per corruption and variant) and `mnist_c_gallery.png` (digits under every corruption).
"""

import os

import keras
import numpy as np

from keras_norm import corruptions, data, fileio, studies
from keras_norm.errors import KerasNormError
from keras_norm.report import stats, variants
from keras_norm.report.corruption_plots import plot, plot_gallery
from keras_norm.run_folder import RunFolder
from keras_norm.studies import models as study_models
from keras_norm.studies.bn_adapt import one_shift
from keras_norm.studies.shift import accuracy

ADAPT_SIZE = 256  # images the statistics are estimated from, beside all of them


def modes(adapt_size):
    """{one_shift's key: the suffix of its variant's name}."""
    return {"frozen": "", "all": " adapted (all)", str(adapt_size): f" adapted ({adapt_size})"}


def load(runs):
    """[(seed, model, pixel mean, pixel std)] of one norm's runs."""
    out = []
    for seed, path in runs:
        ds = RunFolder(path).read("config.json")["dataset"]
        out.append((seed, keras.saving.load_model(os.path.join(path, "model.keras")), ds["pixel_mean"],
                    ds["pixel_std"]))
    return out


def measure(loaded, images, labels, adapt_size=ADAPT_SIZE):
    """{variant: [accuracy per seed]} on one test set: each norm as deployed, and BN adapted."""
    out, suffix = {}, modes(adapt_size)
    for key, runs in loaded.items():
        norm = key.split("/")[-1]
        for _, model, mean, std in runs:
            if norm == "bn":
                results = one_shift(model, images, labels, mean, std, sizes=(adapt_size,))
            else:
                results = {"frozen": accuracy(model, images, labels, mean, std)}
            for mode, acc in results.items():
                out.setdefault(key + suffix[mode], []).append(round(acc, 5))
    return out


def mean_corruption_error(result):
    """{variant: {"per_seed", "mean", "ci95_logit"}}: the mean over corruptions of the test error (%), per seed."""
    out = {}
    for variant in result["clean"]:
        per_seed = 100 * (1 - np.mean([result["corruptions"][c][variant] for c in result["corruptions"]], axis=0))
        mean, (low, high) = stats.bounded_ci(per_seed)
        out[variant] = {"per_seed": [round(float(v), 3) for v in per_seed], "mean": round(mean, 3),
                        "ci95_logit": None if np.isnan(low) else [round(low, 3), round(high, 3)]}
    return out


def comparisons(mce, source_names, adapt_size=ADAPT_SIZE):
    """Adapted - frozen BN (paired per seed), and the norms of each source against each other (Welch, Holm)."""
    out = {"adapted_minus_frozen_pp": {}, "between_norms_pp": {}}
    for source in source_names:
        frozen = f"{source}/bn"
        for mode in list(modes(adapt_size).values())[1:]:
            if frozen + mode in mce:
                diff, (low, high), p = stats.paired(mce[frozen + mode]["per_seed"], mce[frozen]["per_seed"])
                out["adapted_minus_frozen_pp"][frozen + mode] = {
                    "difference_pp": round(diff, 3), "ci95_pp": [round(low, 3), round(high, 3)], "p": round(p, 6)}
        # Each norm as deployed, and BN adapted on all images; BN adapted vs frozen is the paired test above.
        plain = {v: mce[v]["per_seed"] for v in mce if v.startswith(source + "/") and (
            "adapted" not in v or v.endswith(" adapted (all)"))}
        pairs = [(a, b) for a, b in variants.all_pairs(plain) if {a, b} != {frozen, frozen + " adapted (all)"}]
        if pairs and all(len(v) > 1 for v in plain.values()):
            out["between_norms_pp"][source] = variants.comparisons(plain, pairs)
    return out


def evaluate(sources, images, labels, names=tuple(corruptions.CORRUPTIONS), log=print, adapt_size=ADAPT_SIZE):
    loaded = {f"{s}/{norm}": load(runs) for s, per_norm in sources.items() for norm, runs in per_norm.items()}
    result = {"clean": measure(loaded, images, labels, adapt_size), "corruptions": {}}
    for name in names:
        log(f"suite mnist_c: {name}")
        result["corruptions"][name] = measure(loaded, corruptions.corrupted(images, name), labels, adapt_size)
    result["seeds"] = {key: [seed for seed, *_ in runs] for key, runs in loaded.items()}
    return result


def run(base, options, log=print, names=tuple(corruptions.CORRUPTIONS), adapt_size=ADAPT_SIZE):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(artifacts)
    sources = study_models.sources(artifacts)
    if not sources:
        raise KerasNormError(f"no trained model.keras under {artifacts}/seeds/runs or the fair comparison's runs; "
                             "run --suite=seeds or --suite=fair first")
    first = next(iter(next(iter(sources.values())).values()))[0][1]
    flags = RunFolder(first).read("config.json")["flags"]
    images, labels = data.raw_test_set(flags["data_path"], flags["test_limit"])
    log(f"suite mnist_c: {sum(len(r) for s in sources.values() for r in s.values())} models x {len(names)} "
        f"corruptions of {len(labels)} test images")
    result = evaluate(sources, images, labels, names, log, adapt_size)
    result.update(corruption_seed=corruptions.SEED, adapt_size=adapt_size, test_images=len(labels),
                  definition="accuracy per seed on each corrupted test set; mCE = mean over the corruptions of the "
                             "test error in %, unnormalized")
    plot_gallery(images[:2], os.path.join(artifacts, "mnist_c_gallery.png"))
    return write(artifacts, result)


def write(artifacts, result):
    """mnist_c.json (with the mCE and the comparisons computed from its per-seed accuracies) and mnist_c.png."""
    result["mean_corruption_error_pct"] = mce = mean_corruption_error(result)
    result["comparisons"] = comparisons(mce, {key.split("/")[0] for key in result["clean"]}, result["adapt_size"])
    result["comparison_rule"] = ("mCE per seed; BN adapted - frozen: paired t (the same models); between the "
                                 "variants of one source (each norm as deployed, BN adapted on all images): "
                                 "Welch's t, Holm over the source's pairs, real when p_holm < 0.05")
    fileio.write_json(os.path.join(artifacts, "mnist_c.json"), result)
    plot(result, os.path.join(artifacts, "mnist_c.png"))
    return result


def replot(base, options, log=print):
    """Rewrites mnist_c.json's mCE and comparisons and mnist_c.png from its per-seed accuracies (no models)."""
    return studies.redraw(base, "mnist_c", write, "mCE, comparisons and figure", log)
