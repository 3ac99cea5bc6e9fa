"""A drop-in `keras.optimizers.SGD` whose Nesterov momentum update is one TensorFlow op per variable.

Keras's SGD with momentum mu and Nesterov updates a variable w with gradient g at learning rate lr as

    m <- mu * m - lr * g,    w <- w + mu * m - lr * g

in about ten small TensorFlow ops per variable (casts, multiplies, subtracts, reads and assigns), which the
executor schedules one by one in every training step. `FusedSGD` hands the same formula to TensorFlow's own
`ResourceApplyKerasMomentum` kernel (written for Keras's optimizer): one op per variable, the same update up to
float32 round-off (tests/test_engine.py). Without momentum or Nesterov, for variables that are not float32, or
under a tf.distribute strategy (whose mirrored variables that op cannot take), Keras's own update runs.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_norm.engine")
class FusedSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD`, its Nesterov momentum update one op per variable (see the module doc)."""

    def update_step(self, gradient, variable, learning_rate):
        if not (self.momentum and self.nesterov and variable.dtype == "float32" and not tf.distribute.has_strategy()):
            return super().update_step(gradient, variable, learning_rate)
        m = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=m.handle, lr=tf.cast(learning_rate, tf.float32),
            grad=tf.cast(gradient, tf.float32), momentum=tf.constant(self.momentum, tf.float32), use_nesterov=True)
