"""The evaluation suites over the seeds suite's models (input shift, BN's batch statistics), on tiny data,
and the batch independence of GN and LN."""

import os
import tempfile
import unittest

import numpy as np

from keras_norm import layer_stats, train
from keras_norm import model as model_lib
from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.errors import KerasNormError
from keras_norm.studies import bn_batch_stats, shift
from keras_norm.studies import inside as inside_suite
from keras_norm.studies.seeds import suite_dir
from tests import helpers


class EvaluationSuitesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        npz = helpers.write_small_npz(cls.tmp.name, n_train=192, n_test=40)
        cls.artifacts = os.path.join(cls.tmp.name, "artifacts")
        cls.base = RunConfig.create(data_path=npz, artifacts_dir=cls.artifacts, epochs=1, batch_size=32, export=False)
        for norm, seed in (("bn", 0), ("bn", 1), ("gn", 0), ("ln", 0)):
            config = cls.base.replace(norm=norm, seed=seed, artifacts_dir=suite_dir(cls.artifacts))
            train.train(config, log=lambda *a, **k: None, verbose=0)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_shift_evaluates_every_model_on_every_transform(self):
        result = shift.run(self.base, SuiteOptions(), log=lambda *a, **k: None)
        saved = helpers.read_json(os.path.join(self.artifacts, "shift.json"))
        self.assertEqual(set(saved["transforms"]), set(shift.TRANSFORMS) | {"clean"})
        for name, (severities, _) in shift.TRANSFORMS.items():
            entry = saved["transforms"][name]
            self.assertEqual(entry["severities"], list(severities))
            self.assertEqual([len(per) for per in entry["accuracy"]["bn"]], [2] * len(severities))  # 2 seeds
        self.assertEqual(result["seeds"]["bn"], [0, 1])
        self.assertTrue(os.path.exists(os.path.join(self.artifacts, "shift.png")))
        for name, per_norm in saved["summary_pct"].items():  # every interval inside [0, 100]
            for cells in per_norm.values():
                for cell in cells:
                    low, high = cell["ci95_logit"] if cell["ci95_logit"] else (cell["mean"], cell["mean"])
                    self.assertTrue(0 <= cell["min"] <= cell["max"] <= 100 and 0 <= low <= high <= 100, cell)
        os.remove(os.path.join(self.artifacts, "shift.png"))
        again = shift.replot(self.base, SuiteOptions(replot=True), log=lambda *a, **k: None)  # from the JSON alone
        self.assertEqual(again["transforms"], saved["transforms"])
        self.assertEqual(again["summary_pct"], saved["summary_pct"])
        self.assertTrue(os.path.exists(os.path.join(self.artifacts, "shift.png")))

    def test_accuracy_is_keras_predicts_in_any_chunks(self):
        import keras

        from keras_norm import data
        from keras_norm.run_folder import RunFolder
        from keras_norm.studies.seeds import suite_models

        path = suite_models(self.artifacts)["bn"][0][1]
        model = keras.saving.load_model(os.path.join(path, "model.keras"))
        ds = RunFolder(path).read("config.json")["dataset"]
        images, labels = data.raw_test_set(self.base.learning.data_path)
        x = model_lib.model_input(model, images, ds["pixel_mean"], ds["pixel_std"])
        expected = float(np.mean(model.predict(x, verbose=0).argmax(1) == labels))
        for batch in (16, 1000):  # 40 images: chunks of 16, 16 and 8, or one
            self.assertEqual(shift.accuracy(model, images, labels, ds["pixel_mean"], ds["pixel_std"], batch), expected)

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

    def test_bn_batch_statistics_and_gn_ln_invariance(self):
        result = bn_batch_stats.run(self.base, SuiteOptions(), log=lambda *a, **k: None)
        self.assertEqual(len(result["bn"]["moving_statistics"]), 2)
        self.assertEqual(sorted(result["bn"]["batch_statistics"], key=int), [str(b) for b in bn_batch_stats.BATCH_SIZES])
        for norm in ("gn", "ln"):
            [check] = result["batch_invariance"][norm]
            self.assertTrue(check["same_predictions"])
            self.assertLess(check["max_abs_logit_diff"], 1e-4)
        saved = helpers.read_json(os.path.join(self.artifacts, "bn_batch_stats.json"))
        self.assertEqual(saved["batch_sizes"], list(bn_batch_stats.BATCH_SIZES))
        paired = saved["batch_minus_moving_paired"]  # the same model measured two ways: paired over seeds
        self.assertEqual(sorted(paired, key=int), [str(b) for b in bn_batch_stats.BATCH_SIZES])
        moving = np.asarray(result["bn"]["moving_statistics"])
        for b, row in paired.items():
            gap = 100 * (np.asarray(result["bn"]["batch_statistics"][b]) - moving)
            self.assertAlmostEqual(row["difference_pp"], float(gap.mean()), places=3)
            self.assertEqual(row["real"], row["p_holm"] < 0.05)

    def test_bn_adapt_compares_frozen_and_adapted_statistics_on_every_shift(self):
        from keras_norm.studies import bn_adapt

        result = bn_adapt.run(self.base, SuiteOptions(), log=lambda *a, **k: None, sizes=(8, 16),
                              names=("brightness", "inverted"))
        saved = helpers.read_json(os.path.join(self.artifacts, "bn_adapt.json"))
        self.assertEqual(saved["seeds"], {"seeds": [0, 1]})  # the BN models only
        entry = saved["sources"]["seeds"]
        self.assertEqual(set(entry), {"brightness", "inverted", "clean"})
        for name, shifted in entry.items():
            self.assertEqual(set(shifted) - {"severities"}, {"frozen", "all", "8", "16"})
            for mode in ("frozen", "all", "8", "16"):
                self.assertEqual([len(per_seed) for per_seed in shifted[mode]], [2] * len(shifted["severities"]))
        self.assertEqual(result["sources"], saved["sources"])
        self.assertTrue(os.path.exists(os.path.join(self.artifacts, "bn_adapt.png")))
        os.remove(os.path.join(self.artifacts, "bn_adapt.png"))
        bn_adapt.replot(self.base, SuiteOptions(replot=True), log=lambda *a, **k: None)  # from the JSON alone
        self.assertTrue(os.path.exists(os.path.join(self.artifacts, "bn_adapt.png")))

    def test_mnist_c_measures_every_model_frozen_and_bn_adapted(self):
        from keras_norm.studies import mnist_c

        names = ("brightness", "stripe")
        result = mnist_c.run(self.base, SuiteOptions(), log=lambda *a, **k: None, names=names, adapt_size=16)
        saved = helpers.read_json(os.path.join(self.artifacts, "mnist_c.json"))
        self.assertEqual(saved["corruptions"], result["corruptions"])
        variants = {"seeds/bn", "seeds/bn adapted (all)", "seeds/bn adapted (16)", "seeds/gn", "seeds/ln"}
        self.assertEqual(set(saved["clean"]), variants)  # the BN models also adapted; GN and LN as they are
        for name in names:
            self.assertEqual(set(saved["corruptions"][name]), variants)
            self.assertEqual(len(saved["corruptions"][name]["seeds/bn"]), 2)  # one value per seed
        for variant, mce in saved["mean_corruption_error_pct"].items():
            errors = [100 * (1 - np.mean([saved["corruptions"][n][variant][i] for n in names]))
                      for i in range(len(saved["seeds"][variant.split(" ")[0]]))]
            self.assertEqual(mce["per_seed"], [round(e, 3) for e in errors])
        self.assertIn("seeds/bn adapted (all)", saved["comparisons"]["adapted_minus_frozen_pp"])
        for figure in ("mnist_c.png", "mnist_c_gallery.png"):
            self.assertTrue(os.path.exists(os.path.join(self.artifacts, figure)))
        again = mnist_c.replot(self.base, SuiteOptions(replot=True), log=lambda *a, **k: None)  # from the JSON alone
        self.assertEqual(again["mean_corruption_error_pct"], saved["mean_corruption_error_pct"])

    def test_inside_gathers_every_epoch_of_every_norm(self):
        result = inside_suite.run(self.base, SuiteOptions(), log=lambda *a, **k: None)
        self.assertEqual(result["bn"]["seeds"], [0, 1])
        for norm in ("bn", "gn", "ln"):
            entry = result[norm]
            self.assertEqual(entry["layers"], ["conv1", "conv2", "conv3", "conv4", "conv5"])
            self.assertEqual(np.array(entry["grad_norm"]).shape, (1, 5))  # 1 epoch, 5 blocks
            self.assertTrue(np.all(np.array(entry["grad_norm"]) > 0))
        self.assertTrue(os.path.exists(os.path.join(self.artifacts, "inside.png")))

    def test_without_suite_models_it_says_so(self):
        with self.assertRaisesRegex(KerasNormError, "--suite=seeds"):
            shift.run(self.base.replace(artifacts_dir=os.path.join(self.tmp.name, "empty")), SuiteOptions())


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


if __name__ == "__main__":
    unittest.main()


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
