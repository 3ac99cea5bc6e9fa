"""The model factory: one small MNIST CNN, normalized by the layer the `norm` argument names.

Architecture (fewer than 8,000 trainable parameters for every norm)::

    28x28x1 -> conv3x3(8) -> conv3x3(16) -> conv1x1(8) -> maxpool   # block 1 + transition
            -> conv3x3(16) -> conv3x3(16) -> conv3x3(16)             # block 2
            -> global average pooling -> dropout -> dense(10 logits)

Each 3x3 convolution is followed by normalization and ReLU; dropout follows the pooling and the
global average pooling. The layers are Keras's own; training may swap them for equal but faster
ones (keras_norm/engine, `--fast`), which never changes this model. For an activation tensor
x of shape (N, H, W, C) every norm computes y = gamma * (x - mean) / sqrt(var + eps) + beta; they
differ only in the axes of the mean and (biased) variance:

* ``bn``: per channel, over (N, H, W) - the statistics depend on the rest of the batch;
* ``ln``: per example, over (H, W, C);
* ``gn``: per example and group of C/G channels, over (H, W, C/G);
* ``in``: per example and channel, over (H, W) (GN with one channel per group).

``bn`` is ``keras.layers.BatchNormalization``; ``gn`` and ``in`` are ``keras.layers.GroupNormalization``.
With ``renorm=True``, ``bn`` is batch renormalization (Ioffe 2017, Keras's ``renorm=True``): in training it
normalizes with the batch's statistics and then corrects towards the moving ones,
y = gamma * ((x - mean_B) / sigma_B * r + d) + beta with r = sigma_B / sigma and d = (mean_B - mu) / sigma
held constant in the gradient, r clipped to [1/3, 3] and d to [-5, 5] (the paper's final limits), so training
sees what inference will compute. ``weight_standardization=True`` makes every 3x3 convolution a `WSConv2D`
(Qiao et al. 2019), whose kernel is standardized per output channel before it convolves.
``ln`` computes layer normalization's statistics; Keras offers two spellings of it:
``GroupNormalization(groups=1)`` (the default, ``ln_impl="group"``), with one gamma and beta per channel,
and ``LayerNormalization(axis=(1, 2, 3))`` (``ln_impl="layer"``), which learns one per activation
(H*W*C of them: 42,930 parameters instead of 7,426, far over the 8,000 budget). Both normalize
identically (tests/test_model.py).
"""

import keras
from keras import ops

from keras_norm.config import BLOCK1, BLOCK2, TRANSITION, check_groups
from keras_norm.errors import KerasNormError

EPSILON = 1e-3  # Keras's default for all three layers, stated once so they agree.
RENORM_CLIPPING = {"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0}
STANDARDIZE = "standardize"  # the exported model's first layer: raw pixels in, standardized values out


@keras.saving.register_keras_serializable(package="keras_norm")
class WSConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a weight-standardized kernel (Qiao et al. 2019).

    Each output channel's kernel W[:, :, :, o] (its kh * kw * C_in weights) is standardized before it
    convolves, W_hat = (W - mean) / sqrt(var + eps), with the mean and (biased) variance over those weights;
    the weights stored and trained are W. The same in training and inference; it adds no parameters."""

    def __init__(self, *args, ws_epsilon=1e-5, **kwargs):
        super().__init__(*args, **kwargs)
        self.ws_epsilon = ws_epsilon

    def standardized_kernel(self):
        mean = ops.mean(self.kernel, axis=(0, 1, 2), keepdims=True)
        variance = ops.var(self.kernel, axis=(0, 1, 2), keepdims=True)
        return (self.kernel - mean) / ops.sqrt(variance + self.ws_epsilon)

    def convolution_op(self, inputs, kernel):
        del kernel  # the stored kernel; the standardized one convolves
        return super().convolution_op(inputs, self.standardized_kernel())

    def get_config(self):
        return {**super().get_config(), "ws_epsilon": self.ws_epsilon}


def normalization(norm, groups=4, ln_impl="group", name=None, sync_bn=False, renorm=False):
    """The Keras normalization layer for `norm`, or None for `none`.

    `sync_bn`: BatchNormalization computes its batch statistics across all replicas of a
    tf.distribute strategy (the global batch) instead of each replica's slice. `renorm`: batch
    renormalization (bn only)."""
    if norm == "bn":
        return keras.layers.BatchNormalization(epsilon=EPSILON, synchronized=sync_bn, name=name, renorm=renorm,
                                               renorm_clipping=RENORM_CLIPPING if renorm else None)
    if norm == "gn":
        return keras.layers.GroupNormalization(groups=groups, epsilon=EPSILON, name=name)
    if norm == "ln" and ln_impl == "layer":
        return keras.layers.LayerNormalization(axis=(1, 2, 3), epsilon=EPSILON, name=name)
    if norm == "ln":  # LayerNormalization's statistics with per-channel gamma/beta
        return keras.layers.GroupNormalization(groups=1, epsilon=EPSILON, name=name)
    if norm == "in":  # one channel per group
        return keras.layers.GroupNormalization(groups=-1, epsilon=EPSILON, name=name)
    if norm == "none":
        return None
    raise KerasNormError(f"unknown norm {norm!r}")


def build_model(norm="bn", groups=4, ln_impl="group", l1=0.0, l2=0.0, dropout=0.05, sync_bn=False, renorm=False,
                weight_standardization=False, pixel_stats=None):
    """Builds the (uncompiled) CNN; it outputs logits.

    It takes standardized images, as training feeds them; with `pixel_stats` = (mean, std) of the training
    pixels on the [0, 1] scale it takes raw pixels (0-255) instead: its first layer, a `Rescaling` named
    "standardize", computes (x / 255 - mean) / std. That layer has no weights, so the two models share them."""
    check_groups(norm, groups)
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    conv = WSConv2D if weight_standardization else keras.layers.Conv2D

    def conv_block(x, filters, name):
        # A following norm's beta makes a conv bias redundant.
        x = conv(filters, 3, use_bias=norm == "none", kernel_regularizer=regularizer, name=name)(x)
        layer = normalization(norm, groups, ln_impl, name=f"{name}_{norm}", sync_bn=sync_bn, renorm=renorm)
        if layer is not None:
            x = layer(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    if pixel_stats is not None:
        mean, std = pixel_stats
        x = keras.layers.Rescaling(1.0 / (255.0 * std), offset=-mean / std, name=STANDARDIZE)(x)
    for i, filters in enumerate(BLOCK1, start=1):
        x = conv_block(x, filters, f"conv{i}")
    x = keras.layers.Conv2D(TRANSITION, 1, use_bias=False, kernel_regularizer=regularizer, name="transition")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    if dropout:
        # Dropout only where tensors are small: random masks on every full-resolution map were
        # expensive on the 2-core CPU this project is measured on.
        x = keras.layers.Dropout(dropout, name="pool_dropout")(x)
    for i, filters in enumerate(BLOCK2, start=len(BLOCK1) + 1):
        x = conv_block(x, filters, f"conv{i}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(10, kernel_regularizer=regularizer, name="logits")(x)
    name = f"cnn_{norm}" + ("_layer" if norm == "ln" and ln_impl == "layer" else "")
    return keras.Model(inputs, logits, name=name)


def build_from_config(learning, sync_bn=False, pixel_stats=None):
    """The model of a run's `Learning` settings."""
    return build_model(norm=learning.norm, groups=learning.groups, ln_impl=learning.ln_impl, l1=learning.l1,
                       l2=learning.l2, dropout=learning.dropout, sync_bn=sync_bn, renorm=learning.renorm,
                       weight_standardization=learning.weight_standardization, pixel_stats=pixel_stats)


def for_raw_pixels(model, learning, mean, std):
    """The deployed model: `model`'s weights in the same network with its input standardization built in, so that
    a 28x28 digit with values 0-255 goes straight in (model.keras and the SavedModel are this model)."""
    deployed = build_from_config(learning, pixel_stats=(mean, std))
    deployed.set_weights(model.get_weights())
    return deployed


def takes_raw_pixels(model):
    """Whether a loaded Keras model standardizes its own input (exported models do)."""
    return any(layer.name == STANDARDIZE for layer in model.layers)


def model_input(model, images, mean, std):
    """Images on the [0, 1] scale, shaped (N, 28, 28, 1), as `model` takes them: raw 0-255 pixels for a model
    that standardizes its own input, else standardized with the run's training mean and std."""
    x = images * 255.0 if takes_raw_pixels(model) else (images - mean) / std
    return x.reshape(-1, 28, 28, 1).astype("float32")


def trainable_params(model):
    return int(sum(w.numpy().size for w in model.trainable_weights))
