"""The model factory builds Keras's own normalization layers, by name, within the parameter budget."""

import unittest

import keras
import numpy as np

from keras_norm import model as model_lib
from keras_norm.config import RunConfig
from keras_norm.errors import KerasNormError

KERAS_LAYER = {"bn": keras.layers.BatchNormalization, "gn": keras.layers.GroupNormalization,
               "ln": keras.layers.GroupNormalization, "in": keras.layers.GroupNormalization}
NORM_TYPES = (keras.layers.BatchNormalization, keras.layers.GroupNormalization, keras.layers.LayerNormalization)


def norm_layers(model):
    return [layer for layer in model.layers if isinstance(layer, NORM_TYPES)]


class ModelFactoryTest(unittest.TestCase):
    def test_each_norm_is_keras_own_layer_and_fits_the_budget(self):
        for norm in ("bn", "gn", "ln", "in", "none"):
            with self.subTest(norm=norm):
                model = model_lib.build_model(norm)
                layers = norm_layers(model)
                if norm == "none":
                    self.assertEqual(layers, [])
                else:
                    self.assertTrue(layers)
                    self.assertTrue(all(type(layer) is KERAS_LAYER[norm] for layer in layers))
                self.assertLess(model_lib.trainable_params(model), 8000)
                self.assertEqual(model.output_shape, (None, 10))

    def test_group_counts(self):
        self.assertEqual({layer.groups for layer in norm_layers(model_lib.build_model("gn", groups=2))}, {2})
        self.assertEqual({layer.groups for layer in norm_layers(model_lib.build_model("ln"))}, {1})
        # Instance norm: one group per channel.
        for layer in norm_layers(model_lib.build_model("in")):
            self.assertEqual(layer.groups, layer.input.shape[-1])

    def test_layer_variant_of_ln_uses_layernormalization_and_breaks_budget(self):
        model = model_lib.build_model("ln", ln_impl="layer")
        self.assertTrue(all(type(layer) is keras.layers.LayerNormalization for layer in norm_layers(model)))
        self.assertGreater(model_lib.trainable_params(model), 8000)

    def test_regularization_penalty_is_l1_plus_l2_of_the_kernels(self):
        x = np.zeros((2, 28, 28, 1), "float32")
        for l1, l2 in ((0, 0), (1e-4, 0), (0, 1e-3), (1e-5, 1e-4)):
            with self.subTest(l1=l1, l2=l2):
                model = model_lib.build_model("bn", l1=l1, l2=l2)
                model(x)
                kernels = [w.numpy() for w in model.trainable_weights if w.path.endswith("kernel")]
                expected = sum(l1 * np.abs(w).sum() + l2 * np.square(w).sum() for w in kernels)
                self.assertAlmostEqual(float(sum(model.losses)) if model.losses else 0.0, float(expected), places=3)

    def test_ln_default_and_layernormalization_normalize_identically_at_init(self):
        x = np.random.default_rng(0).normal(1.0, 3.0, (5, 7, 7, 16)).astype("float32")
        by_group = model_lib.normalization("ln", ln_impl="group")(x)
        by_layer = model_lib.normalization("ln", ln_impl="layer")(x)
        np.testing.assert_allclose(np.asarray(by_group), np.asarray(by_layer), atol=1e-5)
        whole = model_lib.build_model("ln", ln_impl="group")
        layered = model_lib.build_model("ln", ln_impl="layer")
        # Same conv and dense weights, both norms at their initial gamma=1, beta=0: same logits.
        for w in whole.weights:
            if w.path.endswith(("kernel", "bias")):
                [other] = [o for o in layered.weights if o.path == w.path]
                other.assign(w)
        images = np.random.default_rng(1).normal(size=(4, 28, 28, 1)).astype("float32")
        np.testing.assert_allclose(np.asarray(whole(images)), np.asarray(layered(images)), atol=1e-5)

    def test_weight_standardized_convs_standardize_each_output_channel_and_save(self):
        import os
        import tempfile

        import tensorflow as tf

        model = model_lib.build_model("gn", weight_standardization=True)
        self.assertEqual(model_lib.trainable_params(model), 7426)  # no new parameters
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        self.assertEqual([type(c).__name__ for c in convs], ["WSConv2D"] * 2 + ["Conv2D"] + ["WSConv2D"] * 3)
        layer = model.get_layer("conv2")
        w = layer.kernel.numpy()
        standardized = (w - w.mean(axis=(0, 1, 2))) / np.sqrt(w.var(axis=(0, 1, 2)) + 1e-5)
        np.testing.assert_allclose(standardized.mean(axis=(0, 1, 2)), 0, atol=1e-6)
        x = np.random.default_rng(0).normal(size=(2, 26, 26, 8)).astype("float32")
        np.testing.assert_allclose(layer(x).numpy(), tf.nn.conv2d(x, standardized, 1, "VALID").numpy(), atol=1e-4)
        images = np.random.default_rng(1).normal(size=(2, 28, 28, 1)).astype("float32")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)

    def test_renorm_is_keras_batch_renormalization_with_the_papers_limits(self):
        layers = norm_layers(model_lib.build_model("bn", renorm=True))
        self.assertTrue(all(type(layer) is keras.layers.BatchNormalization and layer.renorm for layer in layers))
        self.assertEqual(layers[0].renorm_clipping, {"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0})

    def test_groups_that_do_not_divide_channels_fail_at_build(self):
        for groups in (3, 5, 16):
            with self.assertRaisesRegex(KerasNormError, "does not divide"):
                model_lib.build_model("gn", groups=groups)
        with self.assertRaisesRegex(KerasNormError, "does not divide"):
            RunConfig.create(norm="gn", groups=3).validate()


if __name__ == "__main__":
    unittest.main()
