"""The fused layers compute what Keras's own layers compute: outputs, gradients, moving statistics."""

import unittest

import numpy as np

from keras_norm.quiet import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_norm import fused  # noqa: E402


def forward_backward(layer, x, dy, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * dy)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [y.numpy()] + [g.numpy() for g in grads] + [w.numpy() for w in layer.non_trainable_weights]


class _ThenReLU:
    """A Keras layer followed by a ReLU, with the layer's weights (the reference for activation="relu")."""

    def __init__(self, layer):
        self.layer = layer
        self.trainable_weights, self.non_trainable_weights = layer.trainable_weights, layer.non_trainable_weights

    def __call__(self, x, training):
        return tf.nn.relu(self.layer(x, training=training))


def with_activation(layer, kwargs):
    return _ThenReLU(layer) if kwargs["activation"] == "relu" else layer


def relative_error(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))


class FusedLayersTest(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(0)
        self.x = tf.constant(rng.normal(1.0, 2.0, (8, 6, 6, 16)).astype("float32"))
        self.dy = tf.constant(rng.normal(size=(8, 6, 6, 16)).astype("float32"))
        self.gamma = rng.uniform(0.5, 1.5, 16).astype("float32")
        self.beta = rng.normal(size=16).astype("float32")

    def pair(self, keras_layer, fused_layer):
        for layer in (keras_layer, fused_layer):
            layer.build(self.x.shape)
            layer.gamma.assign(self.gamma)
            layer.beta.assign(self.beta)
        return keras_layer, fused_layer

    def assert_same(self, expected, actual):
        self.assertEqual(len(expected), len(actual))
        for e, a in zip(expected, actual):
            self.assertLess(relative_error(e, a), 1e-5)

    # native=True trains with the C++ kernel (tests/test_native.py checks that it is really used), native=False
    # with TensorFlow ops; inference always uses TensorFlow ops. activation="relu" is compared with Keras's
    # layer followed by keras.layers.ReLU.
    VARIANTS = [dict(native=n, activation=a) for n in (True, False) for a in (None, "relu")]

    def test_group_normalization_matches_keras(self):
        for groups in (1, 4, -1):
            for kwargs in self.VARIANTS:
                for training in (True, False):
                    with self.subTest(groups=groups, training=training, **kwargs):
                        k, f = self.pair(keras.layers.GroupNormalization(groups=groups, epsilon=1e-3),
                                         fused.FusedGroupNormalization(groups=groups, epsilon=1e-3, **kwargs))
                        self.assert_same(forward_backward(with_activation(k, kwargs), self.x, self.dy, training),
                                         forward_backward(f, self.x, self.dy, training))

    def test_batch_normalization_matches_keras_in_training_and_inference(self):
        for kwargs in self.VARIANTS:
            with self.subTest(**kwargs):
                k, f = self.pair(keras.layers.BatchNormalization(epsilon=1e-3),
                                 fused.FusedBatchNormalization(epsilon=1e-3, **kwargs))
                # Training: outputs, input/gamma/beta gradients and the updated moving mean and variance.
                self.assert_same(forward_backward(with_activation(k, kwargs), self.x, self.dy, True),
                                 forward_backward(f, self.x, self.dy, True))
                self.assertGreater(float(np.max(np.abs(f.moving_mean.numpy()))), 0.001)  # the update did happen
                # Inference uses the moving statistics.
                self.assert_same(forward_backward(with_activation(k, kwargs), self.x, self.dy, False),
                                 forward_backward(f, self.x, self.dy, False))

    def test_fused_layers_round_trip_through_model_keras(self):
        import os
        import tempfile

        from keras_norm import model as model_lib

        for norm in ("bn", "gn"):
            with self.subTest(norm=norm), tempfile.TemporaryDirectory() as tmp:
                model = model_lib.build_model(norm)
                x = self.x.numpy()[:2, :, :, :1].repeat(5, axis=1).repeat(5, axis=2)[:, :28, :28]
                path = os.path.join(tmp, "m.keras")
                model.save(path)
                loaded = keras.saving.load_model(path)
                self.assertIs(type(loaded.get_layer(f"conv1_{norm}")), type(model.get_layer(f"conv1_{norm}")))
                np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


if __name__ == "__main__":
    unittest.main()
