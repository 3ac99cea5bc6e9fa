"""The model factory: one small MNIST CNN, normalized by the layer the `norm` argument names.

Architecture (fewer than 8,000 trainable parameters for every norm)::

    28x28x1 -> conv3x3(8) -> conv3x3(16) -> conv1x1(8) -> maxpool   # block 1 + transition
            -> conv3x3(16) -> conv3x3(16) -> conv3x3(16)             # block 2
            -> global average pooling -> dropout -> dense(10 logits)

Each 3x3 convolution is followed by normalization and ReLU (with the fused layers of
keras_norm/fused.py, the norm layer applies the ReLU itself); dropout follows the pooling
and the global average pooling. For an activation tensor
x of shape (N, H, W, C) every norm computes y = gamma * (x - mean) / sqrt(var + eps) + beta; they
differ only in the axes of the mean and (biased) variance:

* ``bn``: per channel, over (N, H, W) - the statistics depend on the rest of the batch;
* ``ln``: per example, over (H, W, C);
* ``gn``: per example and group of C/G channels, over (H, W, C/G);
* ``in``: per example and channel, over (H, W) (GN with one channel per group).

gamma and beta are per channel, except for ``ln`` with ``ln_impl="layer"``
(``LayerNormalization(axis=(1, 2, 3))``), which learns one per activation (H*W*C of them).
"""

import keras

from keras_norm.config import BLOCK1, BLOCK2, TRANSITION, check_groups
from keras_norm.errors import KerasNormError

EPSILON = 1e-3  # Keras's default for all three layers, stated once so they agree.


def normalization(norm, groups=4, ln_impl="group", name=None, sync_bn=False, fused=True, native=True,
                  activation=None):
    """Returns the Keras normalization layer for `norm`, or None for `none`.

    `sync_bn`: BatchNormalization computes its batch statistics across all replicas of a
    tf.distribute strategy (the global batch) instead of each replica's slice.
    `fused`: the same layer computed by faster ops (keras_norm/fused.py), which can also apply the
    following ReLU (`activation="relu"`); False gives Keras's own classes (the benchmark's baseline).
    `native`: with `fused`, the layer trains with the C++ kernel of keras_norm/native.py."""
    if fused:
        import functools

        from keras_norm import fused as fused_lib

        batch_norm = functools.partial(fused_lib.FusedBatchNormalization, activation=activation, native=native)
        group_norm = functools.partial(fused_lib.FusedGroupNormalization, activation=activation, native=native)
    elif activation is not None:
        raise ValueError("Keras's own normalization layers take no activation; use fused=True")
    else:
        batch_norm, group_norm = keras.layers.BatchNormalization, keras.layers.GroupNormalization
    if norm == "bn":
        return batch_norm(epsilon=EPSILON, synchronized=sync_bn, name=name)
    if norm == "gn":
        return group_norm(groups=groups, epsilon=EPSILON, name=name)
    if norm == "ln":
        if ln_impl == "layer":
            if activation is not None:
                raise ValueError("ln_impl='layer' uses keras.layers.LayerNormalization, which takes no activation")
            return keras.layers.LayerNormalization(axis=(1, 2, 3), epsilon=EPSILON, name=name)
        # Same statistics as LayerNormalization(axis=(1, 2, 3)), but per-channel gamma/beta.
        return group_norm(groups=1, epsilon=EPSILON, name=name)
    if norm == "in":
        return group_norm(groups=-1, epsilon=EPSILON, name=name)
    if norm == "none":
        return None
    raise KerasNormError(f"unknown norm {norm!r}")


def build_model(norm="bn", groups=4, ln_impl="group", l1=0.0, l2=0.0, dropout=0.05, sync_bn=False, fused=True,
                native=True):
    """Builds the (uncompiled) CNN; it outputs logits."""
    check_groups(norm, groups)
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    use_bias = norm == "none"  # a following norm's beta makes a conv bias redundant

    def conv_block(x, filters, name):
        x = keras.layers.Conv2D(
            filters, 3, use_bias=use_bias, kernel_regularizer=regularizer, name=name
        )(x)
        # The fused layers apply the ReLU themselves, so that the C++ kernel can fuse it with the norm.
        fuse_relu = fused and norm != "none" and not (norm == "ln" and ln_impl == "layer")
        layer = normalization(norm, groups, ln_impl, name=f"{name}_{norm}", sync_bn=sync_bn, fused=fused,
                              native=native, activation="relu" if fuse_relu else None)
        if layer is not None:
            x = layer(x)
        return x if fuse_relu else keras.layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
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


def trainable_params(model):
    return int(sum(w.numpy().size for w in model.trainable_weights))


def build_from_config(config, sync_bn=False):
    return build_model(
        sync_bn=sync_bn,
        norm=config.norm,
        groups=config.groups,
        ln_impl=config.ln_impl,
        l1=config.l1,
        l2=config.l2,
        dropout=config.dropout,
        fused=config.fused,
        native=config.native,
    )
