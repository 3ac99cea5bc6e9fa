"""What the evaluation suites rest on: the shifts, the layer probe, the batch independence of GN and LN, which models
count as the fair comparison's (the suites themselves run on the whole study's models in test_all_suites.py)."""

import os
import tempfile
import unittest

import numpy as np

from keras_norm import layer_stats
from keras_norm import model as model_lib
from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.errors import KerasNormError
from keras_norm.studies import shift


class EvaluationSuitesTest(unittest.TestCase):
    """The suites themselves run in the whole study's test (test_all_suites.py), on the models it trains."""

    def test_transforms_change_the_images_and_stay_in_range(self):
        self.assertEqual(set(shift.CLEAN), set(shift.TRANSFORMS))  # every curve has its clean point
        x = np.zeros((2, 28, 28), np.float32)
        x[:, 10:18, 12:16] = 1.0
        for name, (severities, _) in shift.TRANSFORMS.items():
            for s in severities:
                with self.subTest(name=name, severity=s):
                    y = shift.transformed(x, name, s)
                    self.assertEqual(y.shape, x.shape)
                    self.assertGreater(float(np.abs(y - x).max()), 0.05)
                    self.assertTrue(0.0 <= y.min() and y.max() <= 1.0)

    def test_without_suite_models_it_says_so(self):
        with tempfile.TemporaryDirectory() as tmp:
            base = RunConfig.create(artifacts_dir=os.path.join(tmp, "empty"))
            with self.assertRaisesRegex(KerasNormError, "--suite=seeds"):
                shift.run(base, SuiteOptions())


class InsideProbeTest(unittest.TestCase):
    def test_probe_measures_the_model_it_is_given(self):
        x = np.random.default_rng(1).normal(size=(64, 28, 28, 1)).astype("float32")
        y = np.arange(64) % 10
        for norm in ("bn", "gn", "ln", "none"):
            with self.subTest(norm=norm):
                probe = layer_stats.Probe(RunConfig.create(norm=norm).learning)
                model = model_lib.build_model(norm, dropout=0.0)
                row = probe.measure(model.get_weights(), x, y)
                conv1 = model.get_layer("conv1")(x).numpy()
                first = row["layers"][0]
                self.assertAlmostEqual(first["in_std"], float(conv1.std()), places=4)
                self.assertAlmostEqual(first["kernel_norm"], float(np.linalg.norm(model.get_layer("conv1").kernel)),
                                       places=4)
                for layer in row["layers"]:
                    if norm == "none":  # nothing normalizes: what leaves is what entered
                        self.assertEqual(layer["out_std"], layer["in_std"])
                    else:  # gamma 1 and beta 0 at initialization: the norm's output is standardized
                        self.assertAlmostEqual(layer["out_mean"], 0.0, places=2)
                        self.assertAlmostEqual(layer["out_std"], 1.0, delta=0.02)
                    self.assertGreater(layer["grad_norm"], 0.0)


class BatchIndependenceTest(unittest.TestCase):
    def test_gn_and_ln_give_the_same_output_for_an_image_alone_or_in_a_batch(self):
        x = np.random.default_rng(0).normal(size=(64, 28, 28, 1)).astype("float32")
        for norm in ("gn", "ln", "bn"):
            model = model_lib.build_model(norm, dropout=0.0)
            for training in (False, True):
                with self.subTest(norm=norm, training=training):
                    whole = model(x, training=training).numpy()
                    alone = np.concatenate([model(x[i:i + 1], training=training).numpy() for i in range(8)])
                    differs = np.abs(whole[:8] - alone).max() > 1e-4
                    # BN in training mode normalizes with the batch's statistics: the only case that depends on it.
                    self.assertEqual(differs, norm == "bn" and training)


class StudyModelsTest(unittest.TestCase):
    def test_a_fair_cell_is_a_plain_norm_without_penalty_at_its_peak_rate(self):
        from keras_norm.studies import models

        peak = {"bn": 0.05, "gn": 0.05, "ln": 0.05, "none": 0.05}
        plain = dict(norm="bn", l1=0.0, l2=0.0, groups=4, ln_impl="group", batch_size=64, lr=0.05)
        self.assertTrue(models.is_fair_cell(plain, peak))
        self.assertTrue(models.is_fair_cell(dict(plain, norm="gn"), peak))
        for change in (dict(l2=1e-3), dict(l1=1e-5), dict(renorm=True), dict(norm="gn", groups=8),
                       dict(norm="ln", ln_impl="layer"), dict(batch_size=8), dict(lr=0.1), dict(norm="in")):
            with self.subTest(change=change):
                self.assertFalse(models.is_fair_cell(dict(plain, **change), peak))


if __name__ == "__main__":
    unittest.main()
