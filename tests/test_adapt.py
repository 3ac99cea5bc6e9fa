"""BatchNorm statistics adapted to unlabeled images: exactly the statistics of what enters each BN layer, a
model adapted to its own training distribution predicts as before, and one adapted to a shift recovers."""

import os
import tempfile
import unittest

import keras
import numpy as np

from keras_norm import adapt, data, train
from keras_norm import model as model_lib
from keras_norm.config import RunConfig
from tests import helpers


class AdaptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        npz = helpers.write_small_npz(cls.tmp.name, n_train=1536, n_test=256)
        # 10 epochs (440 steps): the moving statistics (momentum 0.99) have forgotten their initial values
        config = RunConfig.create(norm="bn", epochs=10, batch_size=32, data_path=npz, export=False,
                                  artifacts_dir=os.path.join(cls.tmp.name, "artifacts"))
        folder = train.train(config, log=lambda *a, **k: None, verbose=0)["folder"]
        cls.model = keras.saving.load_model(os.path.join(folder, "model.keras"))  # takes raw 0-255 pixels
        cls.train01 = data.load_npz(npz)[0][:1024].astype(np.float32) / 255.0
        cls.test01, cls.labels = data.raw_test_set(npz)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def predict(self, model, images01):
        return np.asarray(model.predict(255.0 * images01[..., None], verbose=0)).argmax(1)

    def test_the_statistics_are_those_of_what_enters_each_layer(self):
        images = 255.0 * self.test01[:64, :, :, None]
        adapted = adapt.adapt_bn_statistics(self.model, images, batch_size=24)  # batches that do not divide 64
        layers = adapt.bn_layers(adapted)
        self.assertEqual(len(layers), 5)
        for layer in layers:
            x = np.asarray(keras.Model(adapted.inputs[0], layer.input)(images, training=False), dtype=np.float64)
            np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(layer.moving_variance.numpy(), x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
        original = adapt.bn_layers(self.model)[0].moving_mean.numpy()
        self.assertFalse(np.allclose(original, layers[0].moving_mean.numpy()))  # the original is left alone
        for a, b in zip(adapted.trainable_weights, self.model.trainable_weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())

    def test_adapted_to_the_training_images_it_predicts_as_before(self):
        adapted = adapt.adapt_bn_statistics(self.model, 255.0 * self.train01[..., None])
        before, after = self.predict(self.model, self.test01), self.predict(adapted, self.test01)
        # The moving averages are close to, not exactly, the training images' statistics: nearly every prediction
        # stays (98-99% over repeated runs of this test), and accuracy with it.
        self.assertGreaterEqual(np.mean(before == after), 0.95)
        self.assertLessEqual(abs(np.mean(before == self.labels) - np.mean(after == self.labels)), 0.02)

    def test_adapted_to_a_brightness_shift_it_recovers(self):
        shifted = np.clip(self.test01 + 0.4, 0, 1)
        frozen = np.mean(self.predict(self.model, shifted) == self.labels)
        adapted = adapt.adapt_bn_statistics(self.model, 255.0 * shifted[..., None])
        self.assertGreater(np.mean(self.predict(adapted, shifted) == self.labels), frozen + 0.1)

    def test_a_model_without_bn_is_returned_unchanged(self):
        model = model_lib.build_model("gn")
        copy = adapt.adapt_bn_statistics(model, np.zeros((4, 28, 28, 1), np.float32))
        self.assertIsNot(copy, model)
        for a, b in zip(copy.weights, model.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


if __name__ == "__main__":
    unittest.main()
