"""Faster drop-in versions of Keras's BatchNormalization and GroupNormalization (TensorFlow backend).

Same weights, same formula, same results (to float32 round-off) as the Keras layers they subclass;
only the ops that compute them differ. Both take two extra arguments:

* ``activation=None | "relu"``: the ReLU that follows the norm in the model, computed inside the layer
  (y = max(norm(x), 0)), so that the C++ kernel can fuse it;
* ``native=True``: in training, the project's C++ kernel (keras_norm/engine/native.py,
  keras_norm/engine/kernels/normalize.cc) computes norm, ReLU and their gradient in two passes over the
  activations each way, when it can be built. Inference, and so an exported SavedModel, always uses
  TensorFlow ops, which need nothing beyond TensorFlow.

Without the kernel (native=False, or no C++ compiler):

* ``FusedBatchNormalization``: in training, one ``FusedBatchNormV3`` kernel (oneDNN on CPU)
  computes the batch mean and variance and normalizes, instead of Keras's separate mean, variance,
  subtract, multiply and add ops and their gradients. TensorFlow returns the unbiased batch variance
  (divided by n - 1); Keras's moving variance uses the biased one (divided by n), so it is rescaled by
  (n - 1) / n before the moving-average update. Inference, synchronized BN (several replicas) and
  masks use Keras's own path.
* ``FusedGroupNormalization``: the group statistics come from per-channel sums of x and x^2 over
  (H, W) (reductions TensorFlow runs fast on CPU); the per-example, per-channel scale
  gamma / sqrt(var + eps) and shift beta - mean * scale are formed on tiny (N, C) tensors, so the
  full-size activation sees one multiply and one add, y = x * scale + shift; and the backward pass is
  written out (`group_norm`) instead of differentiating Keras's 5-D reshape-and-moments graph.
  LayerNormalization over (H, W, C) is the case groups = 1.
"""

import keras
import tensorflow as tf

from keras_norm.engine import native as native_lib

ACTIVATIONS = (None, "relu")


class _FusedMixin:
    """The `activation` and `native` arguments shared by both layers."""

    def _init_fused(self, activation, native):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        self.activation, self.native = activation, native

    def _activate(self, outputs):
        return tf.nn.relu(outputs) if self.activation == "relu" else outputs

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, "native": self.native}


@keras.saving.register_keras_serializable(package="keras_norm.engine")
class FusedBatchNormalization(_FusedMixin, keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` (then an optional ReLU) computed by one kernel in training."""

    def __init__(self, activation=None, native=True, **kwargs):
        super().__init__(**kwargs)
        self._init_fused(activation, native)

    def _fusable(self, inputs, training, mask):
        return (training and self.trainable and mask is None and not self.synchronized and not self.renorm
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and inputs.dtype == tf.float32)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return self._activate(super().call(inputs, training=training, mask=mask))
        channels = inputs.shape[-1]
        gamma = tf.convert_to_tensor(self.gamma if self.scale else tf.ones([channels], inputs.dtype))
        beta = tf.convert_to_tensor(self.beta if self.center else tf.zeros([channels], inputs.dtype))
        if native_lib.usable(self.native, inputs):
            outputs, mean, variance = native_lib.normalize(inputs, gamma, beta, self.epsilon, batch=True,
                                                           relu=self.activation == "relu")
        else:
            outputs, mean, unbiased_var = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True,
            )
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), inputs.dtype)
            variance = unbiased_var * (n - 1.0) / tf.maximum(n, 1.0)
            outputs = self._activate(outputs)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return outputs


def _per_group_sum(t, groups):
    """(N, C) -> (N, G, 1): the sum over each group's channels."""
    return tf.reduce_sum(tf.reshape(t, [-1, groups, t.shape[-1] // groups]), axis=2, keepdims=True)


def _per_channel(t, channels):
    """(N, G, 1) or (N, G, C/G) -> (N, 1, 1, C): a per-group or per-channel value broadcast to every channel."""
    return tf.reshape(t * tf.ones([1, 1, channels // t.shape[1]], t.dtype), [-1, 1, 1, channels])


def group_norm(x, gamma, beta, groups, epsilon):
    """Group normalization of channels-last (N, H, W, C) `x` with an explicit, short backward pass.

    Forward, per example n and group g of C/G channels (M = H * W * C/G values):
        mean = sum(x) / M,  var = sum(x^2) / M - mean^2,  r = 1 / sqrt(var + eps)
        y = x * a + b  with  a = r * gamma_c,  b = beta_c - mean * a           (a, b per n and c)
    Backward, from the per-channel sums t1 = sum_hw(dy) and t2 = sum_hw(dy * x):
        dbeta_c = sum_n t1,  dgamma_c = sum_n r * (t2 - mean * t1)
        m1 = sum_{c in g} gamma_c * t1 / M,  m2 = sum_{c in g} gamma_c * r * (t2 - mean * t1) / M
        dx = a * dy + p * x + q  with  p = -r^2 * m2,  q = r * (mean * r * m2 - m1)
    which is the textbook gradient r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = gamma * dy,
    written so that every full-size tensor is touched a few times only.
    """
    channels = x.shape[-1]
    per_group = channels // groups
    per_group_sum = lambda t: _per_group_sum(t, groups)  # noqa: E731
    per_channel = lambda t: _per_channel(t, channels)  # noqa: E731

    @tf.custom_gradient
    def _group_norm(x, gamma, beta):
        shape = tf.shape(x)
        count = tf.cast(shape[1] * shape[2] * per_group, x.dtype)
        mean = per_group_sum(tf.reduce_sum(x, axis=[1, 2])) / count
        # One-pass variance, clamped at 0: fine in float32 unless |mean| >> std, which conv outputs here are not.
        variance = tf.nn.relu(per_group_sum(tf.reduce_sum(tf.square(x), axis=[1, 2])) / count - tf.square(mean))
        r = tf.math.rsqrt(variance + epsilon)  # (N, G, 1)
        gamma_g = tf.reshape(gamma, [1, groups, per_group])
        a = r * gamma_g  # (N, G, C/G)
        b = tf.reshape(beta, [1, groups, per_group]) - mean * a
        y = x * per_channel(a) + per_channel(b)

        def grad(dy):
            t1 = tf.reshape(tf.reduce_sum(dy, axis=[1, 2]), [-1, groups, per_group])
            t2 = tf.reshape(tf.reduce_sum(dy * x, axis=[1, 2]), [-1, groups, per_group])
            dyxhat = r * (t2 - mean * t1)  # sum_hw(dy * xhat) per n and c
            m1 = tf.reduce_sum(gamma_g * t1, axis=2, keepdims=True) / count
            m2 = tf.reduce_sum(gamma_g * dyxhat, axis=2, keepdims=True) / count
            p = -tf.square(r) * m2
            q = r * (mean * r * m2 - m1)
            dx = dy * per_channel(a) + (x * per_channel(p) + per_channel(q))
            dgamma = tf.reshape(tf.reduce_sum(dyxhat, axis=0), [channels])
            dbeta = tf.reshape(tf.reduce_sum(t1, axis=0), [channels])
            return dx, dgamma, dbeta

        return y, grad

    return _group_norm(x, gamma, beta)


@keras.saving.register_keras_serializable(package="keras_norm.engine")
class FusedGroupNormalization(_FusedMixin, keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` (then an optional ReLU) for channels-last 4-D inputs."""

    def __init__(self, groups=32, activation=None, native=True, **kwargs):
        super().__init__(groups=groups, **kwargs)
        self._init_fused(activation, native)

    def call(self, inputs, training=None):
        if (len(inputs.shape) != 4 or self.axis not in (-1, 3) or inputs.dtype != tf.float32
                or not (self.scale and self.center)):
            return self._activate(super().call(inputs))
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        if training and native_lib.usable(self.native, inputs):
            return native_lib.normalize(inputs, gamma, beta, self.epsilon, groups=self.groups,
                                        relu=self.activation == "relu")[0]
        return self._activate(group_norm(inputs, gamma, beta, self.groups, self.epsilon))
