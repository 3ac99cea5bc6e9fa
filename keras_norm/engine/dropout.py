"""A drop-in `keras.layers.Dropout` that applies the same mask as one multiply.

Keras draws u ~ U[0, 1) from the layer's seed generator and computes

    y = where(u >= rate, x / (1 - rate), 0)

(tf.nn.experimental.stateless_dropout); the gradient of that `where` is two selects and a reduction for the
broadcast zero, which cost more than drawing u on this project's CPUs. `FastDropout` draws the same u from the
same seed generator and computes

    m = [u >= rate] / (1 - rate),   y = x * m,   dL/dx = dL/dy * m

(m carries no gradient): the same values, forward and backward (a dropped value may be -0.0 instead of 0.0),
proven in tests/test_engine.py. With the C++ kernels (native.py) m comes from one op, kernels/dropout.cc, which
draws u with TensorFlow's own generator on all threads and writes m directly; without them, from
`keras.random.uniform` and two TensorFlow ops. A `noise_shape`, a rate of 0, or inference run Keras's own code.
"""

import keras
import tensorflow as tf

from keras_norm.engine import native


@keras.saving.register_keras_serializable(package="keras_norm.engine")
class FastDropout(keras.layers.Dropout):
    """`keras.layers.Dropout`, its training mask applied as one multiply (see the module doc)."""

    def call(self, inputs, training=False):
        if not (training and 0 < self.rate < 1 and self.noise_shape is None):
            return super().call(inputs, training=training)
        return inputs * tf.stop_gradient(self._mask(inputs))

    def _mask(self, inputs):
        if inputs.dtype == "float32" and native.usable(True, inputs):
            seed = self.seed_generator.next()  # as keras.random.uniform draws it, then casts it (TensorFlow backend)
            if seed.dtype != tf.int32:
                seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
            return native.dropout_mask(tf.shape(inputs), seed, self.rate)
        u = keras.random.uniform(tf.shape(inputs), dtype=inputs.dtype, seed=self.seed_generator)
        scale = tf.constant(1 / (1 - self.rate), inputs.dtype)  # float64 1 / (1 - rate), rounded once, as Keras
        return tf.cast(u >= self.rate, inputs.dtype) * scale  # a broadcast select costs 2x
