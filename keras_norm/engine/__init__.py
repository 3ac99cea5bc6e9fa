"""The speed engine: the same model, computed by faster layers. The study never needs it.

`accelerate(model)` returns a copy of a Keras model in which every `keras.layers.BatchNormalization`
and `keras.layers.GroupNormalization` (LayerNormalization over (H, W, C) is GroupNormalization with one
group here) is replaced by a subclass that computes the same thing with faster ops, and a `ReLU` layer
right after such a norm is folded into it (the norm layer applies the ReLU; an `Identity` takes the
ReLU's place). Every 3x3 and 1x1 `keras.layers.Conv2D` becomes a `FastConv2D`, whose training convolutions
(forward and both gradients) run a C++ kernel; the first convolution, fed by the data, skips its input
gradient. Every `keras.layers.Dropout` becomes a `FastDropout` (the same mask, cheaper ops), every
`keras.layers.MaxPooling2D` a `FastMaxPooling2D` (a 2x2 pooling trains on a C++ kernel). The copy
starts with the model's weights, in the same order, so `model.set_weights(fast.get_weights())` carries
training back to the plain Keras model.

* fused.py: `FusedBatchNormalization`, `FusedGroupNormalization` (TensorFlow ops, hand-written backward);
* native.py, kernels/normalize.cc: the C++ kernel that trains norm + ReLU in two passes over the
  activations each way, compiled on first use; without a compiler the fused TensorFlow ops are used;
* conv.py, kernels/conv3x3.cc, kernels/conv1x1.cc: `FastConv2D` and the direct 3x3 and 1x1 convolution
  kernels it trains with;
* dropout.py, kernels/dropout.cc: `FastDropout`, Keras's dropout mask (drawn by one op) applied as one multiply
  (its gradient too);
* pooling.py, kernels/maxpool.cc: `FastMaxPooling2D` and the 2x2 max pooling kernel it trains with;
* rotation.py, kernels/affine.cc: `FastRandomRotation`, the input pipeline's rotation (pipeline.py uses it
  with `--fast`), the same images as Keras's layer from a faster transform kernel.

`Options` says which of these are used; the training code takes its defaults (all of them), and only the
benchmark (keras_norm/bench/) turns parts off to measure what each is worth. The engine imports nothing of the
package but its leaf utilities (the error type, the quiet TensorFlow import): it is the bottom layer.

Only training uses the kernel: in inference the fast layers use TensorFlow ops, and the project saves
and exports the plain Keras model. tests/test_engine.py proves the swapped model computes what the
Keras model computes (outputs, gradients, moving statistics).
"""

from typing import NamedTuple

import keras

from keras_norm.engine import conv, dropout, fused, native, pooling

CONV_SIZES = ((3, 3), (1, 1))  # the kernel sizes FastConv2D trains on C++ kernels
NORM_CLASSES = {keras.layers.BatchNormalization: fused.FusedBatchNormalization,
                keras.layers.GroupNormalization: fused.FusedGroupNormalization}


class Options(NamedTuple):
    """Which parts of the engine are used: all of them by default."""

    native_kernel: bool = True  # norm + ReLU on the C++ kernel (else the fused layers' TensorFlow ops)
    conv_sizes: tuple = CONV_SIZES  # Conv2D kernel sizes swapped for FastConv2D; others stay Keras's
    fast_dropout: bool = True  # Dropout -> FastDropout
    fast_pooling: bool = True  # MaxPooling2D -> FastMaxPooling2D
    fast_rotation: bool = True  # the input pipeline rotates with FastRandomRotation (keras_norm/pipeline.py)


def kernel_status():
    """'' when the C++ kernel is in use, else why not (the fast layers then use TensorFlow ops)."""
    return "" if native.load() is not None else native.why_not()


def _consumers(model):
    """{layer name: [layers that take its output]} over the functional graph."""
    consumers = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                consumers.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return consumers


def relu_after_norm(model):
    """{norm layer name: name of the ReLU layer that alone consumes its output}, for the norms swapped."""
    consumers = _consumers(model)
    pairs = {}
    for layer in model.layers:
        after = consumers.get(layer.name, [])
        if type(layer) in NORM_CLASSES and len(after) == 1 and type(after[0]) is keras.layers.ReLU:
            relu = after[0]
            if relu.max_value is None and relu.negative_slope == 0 and relu.threshold == 0:
                pairs[layer.name] = relu.name
    return pairs


def fed_by_data(model):
    """Names of the layers whose every input is one of the model's inputs."""
    inputs = {id(t) for t in model.inputs}
    return {layer.name for layer in model.layers if layer._inbound_nodes
            and all(id(t) in inputs for node in layer._inbound_nodes for t in node.input_tensors)}


def accelerate(model, options=Options()):
    """A copy of functional `model` with faster norm, conv, dropout and pooling layers (see the module doc), same
    weights. `options` (an `Options`) turns parts off; layers it leaves alone are copied as Keras's own."""
    pairs = relu_after_norm(model)
    folded = set(pairs.values())
    first = fed_by_data(model)

    def swap(layer):
        fast = NORM_CLASSES.get(type(layer))
        if fast is not None:
            return fast(activation="relu" if layer.name in pairs else None, native=options.native_kernel,
                        **layer.get_config())
        if layer.name in folded:
            return keras.layers.Identity(name=layer.name)
        if type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) in options.conv_sizes:
            return conv.FastConv2D(input_gradient=layer.name not in first, **layer.get_config())
        if options.fast_dropout and type(layer) is keras.layers.Dropout:
            return dropout.FastDropout.from_config(layer.get_config())
        if options.fast_pooling and type(layer) is keras.layers.MaxPooling2D:
            return pooling.FastMaxPooling2D.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=swap)
    copy.set_weights(model.get_weights())
    return copy
