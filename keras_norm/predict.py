"""Classify your own digit images with a run's exported SavedModel: `--predict=PATH[,PATH...] --run=NAME`.

Each image (PNG, JPEG, ...; any size, colour or grey, dark-on-light or light-on-dark) is brought to what the
model was trained on, the way MNIST itself was made: grey, light digit on a dark background, the digit's
bounding box scaled to fit 20x20 pixels (aspect ratio kept), placed in a 28x28 image with its centre of mass
in the middle, as pixel values 0-255. The model is loaded with `tf.saved_model.load` and called through its
`serve` signature (float32 raw pixels 0-255 of shape (N, 28, 28, 1) -> logits (N, 10)): the exported model
standardizes its own input with the run's training mean and std (its first layer, `standardize`).

With `--adapt_bn` the run's Keras model (`model.keras`, which takes the same raw pixels) is used instead, its
BatchNormalization statistics first re-estimated on the given images (keras_norm/adapt.py): for a batch of images
that share a shift (fainter, brighter, noisier than MNIST), which a BN model's training statistics do not describe.
Models without BN are unchanged by it.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_norm import adapt
from keras_norm.errors import KerasNormError
from keras_norm.run_folder import RunFolder

BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 image
SIZE = 28


def find_run(artifacts_dir, run, keras_model=False):
    """The folder of run `run`: a single run (artifacts/runs/) or a run of the seeds suite; it must hold the
    SavedModel (or, with `keras_model`, model.keras)."""
    need = "model.keras" if keras_model else "saved_model"
    for parent in ("runs", os.path.join("seeds", "runs")):
        folder = os.path.join(artifacts_dir, parent, run)
        if os.path.isdir(folder):
            if not os.path.exists(os.path.join(folder, need)):
                what = "model.keras (--adapt_bn adapts the Keras model)" if keras_model else \
                    "SavedModel; train it without --noexport"
                raise KerasNormError(f"run {run!r} ({folder}) has no {what}")
            return folder
    raise KerasNormError(f"no run {run!r} under {os.path.join(artifacts_dir, 'runs')} "
                         f"or {os.path.join(artifacts_dir, 'seeds', 'runs')}")


def read_grey(path):
    """The image as a float array in [0, 255], light digit on dark background."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                background = Image.new("RGBA", image.size, "white")  # transparent pixels read as paper
                image = Image.alpha_composite(background, image.convert("RGBA"))
            grey = np.asarray(image.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise KerasNormError(f"image {path!r} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise KerasNormError(f"image {path!r} is not a readable image: {e}") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 255.0 - grey if np.median(border) > 127 else grey  # dark ink on light paper: invert


def mnist_style(grey, path="image"):
    """28x28 in [0, 1]: the digit's bounding box scaled into 20x20, centred by its centre of mass."""
    ink = grey - np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    ink = np.clip(ink, 0, None)
    if ink.max() <= 0:
        raise KerasNormError(f"image {path!r} shows no digit (it is one flat colour)")
    rows, cols = np.nonzero(ink > 0.1 * ink.max())
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = BOX / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    digit = np.asarray(Image.fromarray(crop / crop.max() * 255.0).resize((width, height), Image.LANCZOS),
                       dtype=np.float32).clip(0, 255) / 255.0
    canvas = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - height) // 2, (SIZE - width) // 2
    canvas[top:top + height, left:left + width] = digit
    mass_row, mass_col = (np.array(np.nonzero(canvas)) * canvas[np.nonzero(canvas)]).sum(axis=1) / canvas.sum()
    shift = int(round(SIZE / 2 - mass_row)), int(round(SIZE / 2 - mass_col))  # MNIST: centre of mass at (14, 14)
    shift = tuple(int(np.clip(s, -o, o)) for s, o in zip(shift, (top, left)))  # never push ink off the image
    return np.roll(canvas, shift, axis=(0, 1))


def _top3(paths, logits):
    probs = tf.nn.softmax(logits, axis=-1).numpy()
    return [(p, [(int(d), float(row[d])) for d in np.argsort(-row)[:3]]) for p, row in zip(paths, probs)]


def _raw_pixels(paths):
    """The images as the models take them: MNIST-style, 0-255, (N, 28, 28, 1) float32."""
    return 255.0 * np.stack([mnist_style(read_grey(p), p) for p in paths])[..., None].astype(np.float32)


def predict_adapted(paths, folder):
    """predict() with the run's model.keras, its BN statistics re-estimated on these images."""
    import keras

    pixels = _raw_pixels(paths)
    model = adapt.adapt_bn_statistics(keras.saving.load_model(os.path.join(folder, "model.keras")), pixels)
    return _top3(paths, model(pixels, training=False))


def predict(paths, folder, adapt_bn=False):
    """[(path, [(digit, probability)] * 3)] for each image, most probable first."""
    if adapt_bn:
        return predict_adapted(paths, folder)
    run = RunFolder(folder)
    pixels = np.stack([mnist_style(read_grey(p), p) for p in paths])[..., None]  # [0, 1]
    if run.read("metrics.json", {}).get("model_input", "").startswith("raw pixels"):
        images = (255.0 * pixels).astype(np.float32)  # the model standardizes its own input
    else:  # a model exported before it carried its standardization
        dataset = run.read("config.json")["dataset"]
        images = ((pixels - dataset["pixel_mean"]) / dataset["pixel_std"]).astype(np.float32)
    model = tf.saved_model.load(os.path.join(folder, "saved_model"))
    return _top3(paths, model.serve(tf.constant(images)))


def predict_ready(paths, models, adapt_bn=False):
    """{key: [(path, [(digit, probability)] * 3)]} with Keras models that take raw pixels ({key: (label, model)}),
    with `adapt_bn` each BN model's statistics first re-estimated on these images."""
    pixels = _raw_pixels(paths)
    out = {}
    for key, (_, model) in models.items():
        model = adapt.adapt_bn_statistics(model, pixels) if adapt_bn and adapt.bn_layers(model) else model
        out[key] = _top3(paths, model(pixels, training=False))
    return out


def _line(path, top, label=""):
    return f"{path}: {top[0][0]}  ({label}top-3: " + ", ".join(f"{d} {p:.3f}" for d, p in top) + ")"


def run(paths, run_name, artifacts_dir, out=print, adapt_bn=False):
    """Prints one line per image (and per ready-to-try model without a run): the path, the predicted digit, the
    top-3 probabilities."""
    if run_name is None:
        from keras_norm import pretrained

        models = pretrained.load()
        adapted = {key for key, (_, model) in models.items() if adapt_bn and adapt.bn_layers(model)}
        for key, rows in predict_ready(paths, models, adapt_bn).items():
            for path, top in rows:
                out(_line(path, top, f"{models[key][0]};{' BN adapted to these images;' * (key in adapted)} "))
        return
    folder = find_run(artifacts_dir, run_name, keras_model=adapt_bn)
    for path, top in predict(paths, folder, adapt_bn):
        out(_line(path, top))
