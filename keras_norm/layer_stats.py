"""What happens inside (the "internal covariate shift" picture, measured).

`InsideStats`, a callback of every run, records after each epoch, on a fixed batch of validation images,
for every 3x3 convolution block: the mean and standard deviation of the activations entering the norm (the
convolution's output), of those leaving it (before the ReLU), and the norm of the data loss's gradient with
respect to the convolution's kernel (plus the kernel's own norm). It works on a plain Keras copy of the model
(dropout off, the norms in training mode as during a step), so it never touches the model that trains. The
`none` baseline has no norm: its "leaving" numbers are the convolution's output again.

`--suite=inside` gathers those files from the seeds suite's runs into `artifacts/inside.json` and draws
`artifacts/inside.png` (no training).
"""


import keras
import numpy as np
import tensorflow as tf

from keras_norm import fileio
from keras_norm import model as model_lib

PROBE_IMAGES = 256  # the first images of the validation split: the same for every run
FILE = "inside.json"


def block_layers(model):
    """[(conv, norm or None)] for each 3x3 convolution block, in order."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3):
            norm = next((n for n in model.layers if n.name.startswith(layer.name + "_")
                         and not n.name.endswith("_relu")), None)
            out.append((layer, norm))
    return out


class Probe:
    """A plain Keras copy of a run's model (dropout off) that returns the logits and each block's tensors."""

    def __init__(self, learning):
        self.model = model_lib.build_model(norm=learning.norm, groups=learning.groups, ln_impl=learning.ln_impl,
                                           dropout=0.0, renorm=learning.renorm,  # no penalty: the data loss alone
                                           weight_standardization=learning.weight_standardization)
        self.blocks = block_layers(self.model)
        taps = [t for conv, norm in self.blocks for t in (conv.output, (norm or conv).output)]
        self.features = keras.Model(self.model.inputs[0], [self.model.outputs[0]] + taps)

    def measure(self, weights, x, y):
        """One row: per block the entering/leaving mean and std, the kernel gradient norm and kernel norm."""
        self.model.set_weights(weights)  # the same layout as the model that trains (keras_norm/engine)
        kernels = [conv.kernel for conv, _ in self.blocks]
        with tf.GradientTape() as tape:
            logits, *taps = self.features(x, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, kernels)
        rows = []
        for i, (conv, _) in enumerate(self.blocks):
            enter, leave = taps[2 * i], taps[2 * i + 1]
            rows.append({"layer": conv.name, "in_mean": _f(tf.reduce_mean(enter)), "in_std": _f(tf.math.reduce_std(enter)),
                         "out_mean": _f(tf.reduce_mean(leave)), "out_std": _f(tf.math.reduce_std(leave)),
                         "grad_norm": _f(tf.norm(grads[i])), "kernel_norm": _f(tf.norm(kernels[i]))})
        return {"data_loss": _f(loss), "layers": rows}


def _f(t):
    return round(float(t), 6)


class InsideStats(keras.callbacks.Callback):
    """Writes `inside.json` in the run folder after every epoch (rows keyed by epoch, so a resume is clean)."""

    def __init__(self, folder, learning, x_val, y_val):
        super().__init__()
        self.path = folder.file(FILE)
        self.probe = Probe(learning)
        self.x, self.y = x_val[:PROBE_IMAGES], y_val[:PROBE_IMAGES]
        old = folder.read(FILE, {"epochs": []})
        self.rows = {r["epoch"]: r for r in old.get("epochs", [])}

    def on_epoch_end(self, epoch, logs=None):
        row = dict(epoch=epoch + 1, **self.probe.measure(self.model.get_weights(), self.x, self.y))
        self.rows = {e: r for e, r in self.rows.items() if e < epoch + 1}
        self.rows[epoch + 1] = row
        fileio.write_json(self.path, {"probe_images": int(len(self.y)), "epochs": [self.rows[e]
                                                                                   for e in sorted(self.rows)]})


def series(rows, key):
    """(epochs, layers) array of one statistic from inside.json's rows."""
    return np.array([[layer[key] for layer in row["layers"]] for row in rows])
