"""Run as a script (TensorFlow must start with 2 logical CPUs): trains one step of the bn model on
one global batch, on one replica and on 2 mirrored replicas, and prints the largest difference of
the batch statistics that each BatchNormalization layer folded into its moving mean/variance."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_norm import distribute  # noqa: E402
from keras_norm import model as model_lib  # noqa: E402

distribute.split_cpu(2)
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 28, 28, 1)).astype("float32")
x[16:] = x[16:] * 3 + 1  # the two replicas' halves have different statistics
y = rng.integers(0, 10, 32)


def batch_statistics(strategy, sync_bn):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = model_lib.build_model("bn", dropout=0.0, sync_bn=sync_bn)
        model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in bns]
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    out = []
    for b, (mean0, var0) in zip(bns, before):
        m = b.momentum  # moving = m * moving + (1 - m) * batch  =>  batch = (moving - m * old) / (1 - m)
        out.append(((b.moving_mean.numpy() - m * mean0) / (1 - m), (b.moving_variance.numpy() - m * var0) / (1 - m)))
    return out, strategy.num_replicas_in_sync


single, _ = batch_statistics(tf.distribute.get_strategy(), sync_bn=False)
mirrored = distribute.make_strategy("mirrored")
synced, replicas = batch_statistics(mirrored, sync_bn=True)
unsynced, _ = batch_statistics(mirrored, sync_bn=False)


def max_diff(a, b, k):
    return float(max(np.abs(p[k] - q[k]).max() for p, q in zip(a, b)))


print(json.dumps({
    "replicas": replicas,
    "synced_mean_diff": max_diff(single, synced, 0),
    "synced_var_diff": max_diff(single, synced, 1),
    "unsynced_var_diff": max_diff(single, unsynced, 1),
}))
