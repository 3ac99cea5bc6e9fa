"""A drop-in `keras.layers.Conv2D` whose 3x3 and 1x1 convolutions train on the project's C++ kernels.

    y = conv(x, kernel) (+ bias, then the activation), as Keras computes it;
    dL/dx and dL/dkernel as TensorFlow's own conv gradients compute them (to float32 round-off).

`FastConv2D` has the same weights and configuration as the Conv2D it replaces, plus two arguments:

* ``native=True``: in training, a 3x3 VALID or a 1x1, stride-1, undilated, ungrouped, channels-last float32
  convolution on the CPU runs `native.conv3x3` (keras_norm/engine/kernels/conv3x3.cc: vectorized over
  8 or 16 output channels, scalar loops for other widths) or `native.conv1x1` (kernels/conv1x1.cc).
  Anything else, inference (so an exported SavedModel), a GPU, or no C++ compiler: Keras's own
  `Conv2D.call`, i.e. TensorFlow's conv ops.
* ``input_gradient=True``: False skips dL/dx, for a first layer whose input is the data (nobody needs it).
"""

import keras
import tensorflow as tf

from keras_norm.engine import native


@keras.saving.register_keras_serializable(package="keras_norm.engine")
class FastConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`; 3x3 VALID and 1x1 convolutions train on the C++ kernels (see the module doc)."""

    def __init__(self, native=True, input_gradient=True, **kwargs):
        super().__init__(**kwargs)
        self.native, self.input_gradient = native, input_gradient

    def kernel_applies(self):
        """Whether this layer's convolution is one the C++ kernels compute (a 1x1 needs no padding)."""
        size = tuple(self.kernel_size)
        return (((size == (3, 3) and self.padding == "valid") or size == (1, 1)) and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and self.groups == 1 and self.data_format == "channels_last")

    def call(self, inputs, training=None):
        if not (training and self.kernel_applies() and inputs.dtype == "float32" and self.kernel.dtype == "float32"
                and native.usable(self.native, inputs)):
            return super().call(inputs)
        kernel = tf.convert_to_tensor(self.kernel)  # a tensor: the custom gradient then returns dL/dkernel
        convolve = native.conv3x3 if tuple(self.kernel_size) == (3, 3) else native.conv1x1
        outputs = convolve(inputs, kernel, input_gradient=self.input_gradient)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return {**super().get_config(), "native": self.native, "input_gradient": self.input_gradient}
