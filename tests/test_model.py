import unittest

import keras
import numpy as np

from keras_norm import fused
from keras_norm import model as model_lib
from keras_norm.config import Config
from keras_norm.errors import KerasNormError

EXPECTED_LAYER = {  # the fused classes subclass Keras's own layers
    "bn": fused.FusedBatchNormalization,
    "gn": fused.FusedGroupNormalization,
    "ln": fused.FusedGroupNormalization,
    "in": fused.FusedGroupNormalization,
}
KERAS_LAYER = {"bn": keras.layers.BatchNormalization, "gn": keras.layers.GroupNormalization,
               "ln": keras.layers.GroupNormalization, "in": keras.layers.GroupNormalization}


def norm_layers(model):
    kinds = (keras.layers.BatchNormalization, keras.layers.GroupNormalization, keras.layers.LayerNormalization)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


class ModelFactoryTest(unittest.TestCase):
    def test_each_norm_has_its_layers_and_fits_the_budget(self):
        for norm in ("bn", "gn", "ln", "in", "none"):
            with self.subTest(norm=norm):
                model = model_lib.build_model(norm)
                layers = norm_layers(model)
                if norm == "none":
                    self.assertEqual(layers, [])
                else:
                    self.assertEqual(len(layers), 5)
                    self.assertTrue(all(type(layer) is EXPECTED_LAYER[norm] for layer in layers))
                    # --nofused: Keras's own classes (the benchmark's baseline), same parameters.
                    plain = model_lib.build_model(norm, fused=False)
                    self.assertTrue(all(type(layer) is KERAS_LAYER[norm] for layer in norm_layers(plain)))
                    self.assertEqual(model_lib.trainable_params(plain), model_lib.trainable_params(model))
                    # The fused layers apply the ReLU themselves; Keras's are followed by ReLU layers.
                    self.assertTrue(all(layer.activation == "relu" for layer in layers))
                    relus = [layer for layer in plain.layers if isinstance(layer, keras.layers.ReLU)]
                    self.assertEqual(len(relus), 5)
                self.assertLess(model_lib.trainable_params(model), 8000)
                self.assertEqual(model.output_shape, (None, 10))

    def test_fused_and_keras_models_compute_the_same_function(self):
        x = np.random.default_rng(0).uniform(size=(16, 28, 28, 1)).astype("float32")
        for norm in ("bn", "gn", "ln"):
            with self.subTest(norm=norm):
                model = model_lib.build_model(norm, dropout=0.0)  # no random masks in training mode
                plain = model_lib.build_model(norm, fused=False, dropout=0.0)
                plain.set_weights(model.get_weights())
                # Training mode uses the C++ kernel, inference TensorFlow ops.
                for training in (True, False):
                    np.testing.assert_allclose(model(x, training=training).numpy(),
                                               plain(x, training=training).numpy(), atol=2e-5)

    def test_group_counts(self):
        self.assertEqual({layer.groups for layer in norm_layers(model_lib.build_model("gn", groups=2))}, {2})
        self.assertEqual({layer.groups for layer in norm_layers(model_lib.build_model("ln"))}, {1})
        self.assertEqual([layer.groups for layer in norm_layers(model_lib.build_model("in"))], [8, 16, 16, 16, 16])

    def test_layer_variant_of_ln_uses_layernormalization_and_breaks_budget(self):
        model = model_lib.build_model("ln", ln_impl="layer")
        layers = norm_layers(model)
        self.assertTrue(all(type(layer) is keras.layers.LayerNormalization for layer in layers))
        self.assertGreater(model_lib.trainable_params(model), 8000)

    def test_regularization_losses_iff_strength_positive(self):
        x = np.zeros((2, 28, 28, 1), "float32")
        for l1, l2 in ((0, 0), (1e-4, 0), (0, 1e-3), (1e-5, 1e-4)):
            with self.subTest(l1=l1, l2=l2):
                model = model_lib.build_model("bn", l1=l1, l2=l2)
                model(x)
                kernels = [w for w in model.trainable_weights if w.path.endswith("kernel")]
                if l1 or l2:
                    self.assertEqual(len(model.losses), len(kernels))
                    expected = sum(l1 * np.abs(w.numpy()).sum() + l2 * np.square(w.numpy()).sum() for w in kernels)
                    self.assertAlmostEqual(float(sum(model.losses)), float(expected), places=3)
                else:
                    self.assertEqual(len(model.losses), 0)

    def test_ln_default_and_layernormalization_normalize_identically_at_init(self):
        x = np.random.default_rng(0).normal(1.0, 3.0, (5, 7, 7, 16)).astype("float32")
        by_group = model_lib.normalization("ln", ln_impl="group")(x)
        by_layer = model_lib.normalization("ln", ln_impl="layer")(x)
        np.testing.assert_allclose(np.asarray(by_group), np.asarray(by_layer), atol=1e-5)
        whole = model_lib.build_model("ln", ln_impl="group")
        layered = model_lib.build_model("ln", ln_impl="layer")
        # Same conv weights, both norms at their initial gamma=1, beta=0: same logits.
        convs = [w for w in whole.weights if w.path.endswith(("kernel", "bias"))]
        self.assertEqual(len(convs), 8)  # 6 conv kernels, the dense kernel and its bias
        for w in convs:
            [other] = [o for o in layered.weights if o.path == w.path]
            other.assign(w)
        images = np.random.default_rng(1).normal(size=(4, 28, 28, 1)).astype("float32")
        np.testing.assert_allclose(np.asarray(whole(images)), np.asarray(layered(images)), atol=1e-5)

    def test_groups_that_do_not_divide_channels_fail_at_build(self):
        for groups in (3, 5, 16):
            with self.assertRaisesRegex(KerasNormError, "does not divide"):
                model_lib.build_model("gn", groups=groups)
        with self.assertRaisesRegex(KerasNormError, "does not divide"):
            Config(norm="gn", groups=3).validate()
        Config(norm="bn", groups=3).validate()  # groups only matter for gn


if __name__ == "__main__":
    unittest.main()
