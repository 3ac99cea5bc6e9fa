"""The speed engine computes what Keras's own layers compute: per layer and for the whole model."""

import unittest

import keras
import numpy as np
import tensorflow as tf

from keras_norm import engine
from keras_norm import model as model_lib
from keras_norm.engine import fused, native
from keras_norm.engine.conv import FastConv2D
from keras_norm.engine.dropout import FastDropout
from keras_norm.engine.pooling import FastMaxPooling2D


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



class DeviceDecisionTest(unittest.TestCase):
    """The C++ kernel runs only on tensors computed on the CPU; on a GPU, TensorFlow's ops run (decided by the
    tensors' device, not a flag; these machines have no GPU, so the decision itself is tested)."""

    def test_placed_tensors_follow_their_device(self):
        for device, expected in (("/job:localhost/replica:0/task:0/device:CPU:0", True), ("/device:CPU:0", True),
                                 ("/job:localhost/replica:0/task:0/device:GPU:0", False), ("/device:GPU:1", False)):
            for gpus in (False, True):
                with self.subTest(device=device, gpus=gpus):
                    self.assertIs(native.computed_on_cpu(device, gpus), expected)

    def test_unplaced_tensors_go_where_tensorflow_puts_them(self):
        self.assertTrue(native.computed_on_cpu("", gpus_visible=False))
        self.assertFalse(native.computed_on_cpu("", gpus_visible=True))

    def test_on_this_cpu_machine_training_uses_the_kernel(self):
        if engine.kernel_status():
            self.skipTest(f"the C++ kernel cannot be built here: {engine.kernel_status()}")
        x = tf.constant(np.ones((2, 4, 4, 8), "float32"))
        self.assertTrue(native.usable(True, x))
        self.assertFalse(native.usable(False, x))


class AccelerateTest(unittest.TestCase):
    """`engine.accelerate` swaps Keras's norm layers (and the ReLU after them) for the fast ones, nothing else."""

    def test_the_fast_copy_computes_the_same_function_and_gradients(self):
        x = np.random.default_rng(0).normal(size=(16, 28, 28, 1)).astype("float32")  # standardized, like MNIST here
        y = np.arange(16) % 10
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        keras.utils.set_random_seed(0)
        for norm in ("bn", "gn", "ln", "none"):  # the study's norms (instance norm: per layer, TestFusedLayers)
            model = model_lib.build_model(norm, dropout=0.0, l2=1e-3)  # no random masks in training mode
            fast = engine.accelerate(model)
            for training in (True, False):  # training runs the C++ kernel, inference TensorFlow ops
                with self.subTest(norm=norm, training=training):
                    grads = []
                    for m in (model, fast):
                        with tf.GradientTape() as tape:
                            value = loss(y, m(x, training=training)) + tf.add_n(m.losses)
                        grads.append([g.numpy() for g in tape.gradient(value, m.trainable_weights)])
                    np.testing.assert_allclose(fast(x, training=training).numpy(),
                                               model(x, training=training).numpy(), atol=2e-5)
                    for g_model, g_fast in zip(*grads):
                        self.assertLess(relative_error(g_model, g_fast), 1e-3)

    def test_renormalizing_bn_and_weight_standardized_convs_train_exactly_as_keras(self):
        # A renormalizing BN is not a plain BN: the fast BN hands it to Keras's own call; a WSConv2D is not a
        # Conv2D to swap (the fast convolution would drop its standardization): it stays Keras's.
        from keras_norm.model import WSConv2D

        x = np.random.default_rng(2).normal(size=(16, 28, 28, 1)).astype("float32")
        y = np.arange(16) % 10
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        keras.utils.set_random_seed(1)
        for name, kwargs in (("bn_renorm", dict(norm="bn", renorm=True)), ("gn_ws", dict(norm="gn",
                             weight_standardization=True)), ("bn_renorm_ws", dict(norm="bn", renorm=True,
                                                                                   weight_standardization=True))):
            model = model_lib.build_model(dropout=0.0, **kwargs)
            fast = engine.accelerate(model)
            ws = [layer.name for layer in model.layers if isinstance(layer, WSConv2D)]
            self.assertEqual(bool(ws), "ws" in name)
            for layer in ws:
                self.assertIs(type(fast.get_layer(layer)), WSConv2D)
            for training in (True, False):
                with self.subTest(variant=name, training=training):
                    grads = []
                    for m in (model, fast):
                        with tf.GradientTape() as tape:
                            value = loss(y, m(x, training=training))
                        grads.append([g.numpy() for g in tape.gradient(value, m.trainable_weights)])
                    np.testing.assert_allclose(fast(x, training=training).numpy(),
                                               model(x, training=training).numpy(), atol=2e-5)
                    for g_model, g_fast in zip(*grads):
                        self.assertLess(relative_error(g_model, g_fast), 1e-3)
            if "renorm" in name:  # one training step moves the renorm statistics the same way
                for m in (model, fast):
                    m(x, training=True)
                for w_model, w_fast in zip(model.non_trainable_weights, fast.non_trainable_weights):
                    np.testing.assert_allclose(w_fast.numpy(), w_model.numpy(), rtol=1e-4, atol=1e-6)

    def test_only_norms_their_relus_convs_dropout_and_pooling_are_swapped(self):
        for norm, ln_impl in (("bn", "group"), ("gn", "group"), ("ln", "layer")):
            with self.subTest(norm=norm, ln_impl=ln_impl):
                model = model_lib.build_model(norm, ln_impl=ln_impl)
                fast = engine.accelerate(model)
                self.assertEqual([w.path for w in fast.weights], [w.path for w in model.weights])
                for before, after in zip(model.layers, fast.layers):
                    self.assertEqual(before.name, after.name)
                    if type(before) in engine.NORM_CLASSES:
                        self.assertIsInstance(after, type(before))
                        self.assertEqual(after.activation, "relu")
                    elif isinstance(before, keras.layers.ReLU) and ln_impl == "group":
                        self.assertIsInstance(after, keras.layers.Identity)
                    elif isinstance(before, keras.layers.Conv2D):  # the 3x3 convs and the 1x1 transition
                        self.assertIsInstance(after, FastConv2D)
                        self.assertEqual(after.input_gradient, before.name != "conv1")  # conv1 reads the data
                    elif isinstance(before, keras.layers.Dropout):
                        self.assertIsInstance(after, FastDropout)
                    elif isinstance(before, keras.layers.MaxPooling2D):
                        self.assertIsInstance(after, FastMaxPooling2D)
                    else:  # LayerNormalization and everything else stay Keras's own
                        self.assertIs(type(after), type(before))

    def test_fast_dropout_drops_what_keras_drops(self):
        """Eagerly and traced, on the pooled maps, the head's vectors and a size that is no multiple of the
        generator's four values: the same outputs and gradients as Keras's Dropout, step after step."""
        rng = np.random.default_rng(0)
        for shape, rate, traced in (((64, 12, 12, 8), 0.05, False), ((64, 12, 12, 8), 0.05, True),
                                    ((64, 16), 0.05, True), ((3, 5, 7), 0.5, False)):
            x, dy = (tf.constant(rng.normal(size=shape).astype("float32")) for _ in range(2))
            layers = keras.layers.Dropout(rate, seed=4), FastDropout(rate, seed=4)

            def step(layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x, training=True)
                return y, tape.gradient(y, x, dy)

            steps = [tf.function(step) if traced else step for _ in layers]
            for i in range(3):  # the seed generators advance alike
                (want_y, want_dx), (got_y, got_dx) = ([t.numpy() for t in f(layer)] for f, layer in zip(steps, layers))
                with self.subTest(shape=shape, traced=traced, step=i):
                    self.assertGreater(np.mean(want_y == 0), rate / 3)  # it did drop
                    np.testing.assert_array_equal(got_y, want_y)
                    np.testing.assert_array_equal(got_dx, want_dx)
        x = tf.constant(rng.normal(size=(64, 12, 12, 8)).astype("float32"))
        if native.load() is not None:  # the mask came from the kernel
            graph = tf.function(lambda t: layers[1](t, training=True)).get_concrete_function(x).graph
            self.assertIn("KerasNormDropoutMask", {op.type for op in graph.get_operations()})
        np.testing.assert_array_equal(layers[1](x, training=False).numpy(), x.numpy())
        shaped = FastDropout(0.5, noise_shape=(64, 1, 1, 8), seed=1)(x, training=True).numpy()  # Keras's code
        self.assertTrue(np.all((shaped == 0).all(axis=(1, 2)) | (shaped != 0).all(axis=(1, 2))))

    def test_fast_layers_round_trip_through_model_keras(self):
        import os
        import tempfile

        x = np.random.default_rng(1).normal(size=(2, 28, 28, 1)).astype("float32")
        for norm in ("bn", "gn"):
            with self.subTest(norm=norm), tempfile.TemporaryDirectory() as tmp:
                fast = engine.accelerate(model_lib.build_model(norm))
                path = os.path.join(tmp, "m.keras")
                fast.save(path)
                loaded = keras.saving.load_model(path)
                self.assertIs(type(loaded.get_layer(f"conv1_{norm}")), type(fast.get_layer(f"conv1_{norm}")))
                np.testing.assert_allclose(loaded.predict(x, verbose=0), fast.predict(x, verbose=0), atol=1e-6)


if __name__ == "__main__":
    unittest.main()
