"""BatchNorm statistics adapted to the data a model meets (Schneider et al. 2020): no labels, no training.

A BN model normalizes at inference with the moving mean and variance it collected in training. When the input
shifts (brighter, fainter, noisier digits), those statistics no longer describe what enters each layer, and
accuracy can collapse. `adapt_bn_statistics` re-estimates them on unlabeled images of the new distribution:
layer by layer, in the model's order, each BatchNormalization's moving mean and variance become the mean and
(biased) variance over (N, H, W) of what enters it on those images, with every earlier BN layer already adapted.
Everything else (weights, gamma, beta) stays as trained. GroupNormalization and LayerNormalization compute each
image's own statistics and need no adaptation; a model without BN is returned unchanged (a copy).

Schneider et al. also mix source and target statistics with a prior weight N / (N + n); here the target's own
statistics replace the moving ones (their n = 0 limit), the "all images" case of the shift suite.
"""

import keras
import numpy as np


def bn_layers(model):
    """The model's BatchNormalization layers, in order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def adapt_bn_statistics(model, images, batch_size=500):
    """A copy of functional `model` whose BatchNormalization statistics are those of `images` (shaped and scaled
    as the model takes them). The original model is left as it is."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in bn_layers(copy):
        entering = keras.Model(copy.inputs[0], layer.input)  # through the layers adapted so far, inference mode
        count, total, squares = 0, 0.0, 0.0
        for i in range(0, len(images), batch_size):  # per-channel sums in float64, a batch at a time
            x = np.asarray(entering(images[i:i + batch_size], training=False), dtype=np.float64)
            x = x.reshape(-1, x.shape[-1])
            count, total, squares = count + len(x), total + x.sum(axis=0), squares + (x * x).sum(axis=0)
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(squares / count - mean * mean, 0.0).astype(np.float32))
    return copy
