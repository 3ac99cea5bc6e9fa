"""Ready-to-try models: the seed-0 model of each of the main experiment's variants, small `.keras` files that ship
with the package, so `--predict`, `--demo` and the notebook work right after install.

`models.json` names the run each came from (its command, the commit that trained it, its test accuracy). They
take raw 0-255 pixels, shape (N, 28, 28, 1), like every exported model (keras_norm/model.py, `for_raw_pixels`).
"""

import json
import os

from keras_norm.errors import KerasNormError

FOLDER = os.path.dirname(os.path.abspath(__file__))
INDEX = os.path.join(FOLDER, "models.json")


def index():
    """{key: {"file", "label", "run": {...}}} in the order they are shown."""
    try:
        with open(INDEX, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise KerasNormError(f"the ready-to-try models' index {INDEX} is unreadable: {e}") from None


def load(keys=None):
    """{key: (label, Keras model)} of the ready-to-try models (all, or `keys`)."""
    import keras  # only when a model is loaded

    entries = index()
    unknown = sorted(set(keys or ()) - set(entries))
    if unknown:
        raise KerasNormError(f"no ready-to-try model {', '.join(unknown)}; choose from {', '.join(entries)}")
    out = {}
    for key in keys or entries:
        path = os.path.join(FOLDER, entries[key]["file"])
        if not os.path.exists(path):
            raise KerasNormError(f"the ready-to-try model {path} is missing (reinstall the package)")
        out[key] = (entries[key]["label"], keras.saving.load_model(path))
    return out
