"""Faster drop-in versions of Keras's BatchNormalization and GroupNormalization (TensorFlow backend).

Same weights, same config, same formula, same results (to float32 round-off) as the Keras layers
they subclass; only the TensorFlow ops that compute them differ:

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


@keras.saving.register_keras_serializable(package="keras_norm")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel in training."""

    def _fusable(self, inputs, training, mask):
        return (training and self.trainable and mask is None and not self.synchronized and not self.renorm
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and inputs.dtype == tf.float32)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], inputs.dtype)
        beta = self.beta if self.center else tf.zeros([channels], inputs.dtype)
        outputs, mean, unbiased_var = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta),
            epsilon=self.epsilon, data_format="NHWC", is_training=True,
        )
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), inputs.dtype)
        variance = unbiased_var * (n - 1.0) / tf.maximum(n, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return outputs


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

    def per_group_sum(t):  # (N, C) -> (N, G, 1)
        return tf.reduce_sum(tf.reshape(t, [-1, groups, per_group]), axis=2, keepdims=True)

    def per_channel(t):  # (N, G, 1) or (N, G, C/G) -> (N, 1, 1, C)
        return tf.reshape(t * tf.ones([1, 1, per_group], t.dtype), [-1, 1, 1, channels])

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


@keras.saving.register_keras_serializable(package="keras_norm")
class FusedGroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` for channels-last 4-D inputs, as y = x * scale + shift."""

    def call(self, inputs):
        if (len(inputs.shape) != 4 or self.axis not in (-1, 3) or inputs.dtype != tf.float32
                or not (self.scale and self.center)):
            return super().call(inputs)
        return group_norm(inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta),
                          self.groups, self.epsilon)
