import unittest

from keras_norm.config import Config
from keras_norm.errors import KerasNormError


class ConfigTest(unittest.TestCase):
    def test_readable_names(self):
        self.assertEqual(Config(norm="ln", l2=1e-3).folder_name, "ln_l2-0.001")
        self.assertEqual(Config(norm="bn", l1=1e-5, l2=1e-4, seed=2).folder_name, "bn_l1-1e-05_l2-0.0001_seed-2")
        self.assertEqual(Config(norm="gn", groups=2).name, "gn2")
        self.assertEqual(Config(norm="ln", ln_impl="layer").name, "ln-layer")
        self.assertEqual(Config(run_name="mine", seed=1).folder_name, "mine_seed-1")

    def test_settings_that_change_learning_change_the_name(self):
        full = Config(norm="ln", l2=1e-3)
        for change in (dict(epochs=1), dict(batch_size=32), dict(lr=0.1), dict(schedule="step"),
                       dict(augment=False), dict(dropout=0.1), dict(train_limit=100)):
            with self.subTest(change=change):
                self.assertNotEqual(full.replace(**change).name, full.name)
        # Settings that do not change what is learned keep the name.
        self.assertEqual(full.replace(tensorboard=True, export=False, overwrite=True).name, full.name)

    def test_validation(self):
        for bad in (dict(norm="xx"), dict(l1=-1.0), dict(l2=float("nan")), dict(epochs=0), dict(batch_size=0),
                    dict(norm="gn", groups=3), dict(lr=0.0), dict(dropout=1.0), dict(run_name="a/b"),
                    dict(distribute="cluster"), dict(schedule="cosine")):
            with self.subTest(bad=bad), self.assertRaises(KerasNormError):
                Config(**bad).validate()
        Config().validate()
        Config(distribute="multi_worker").validate()  # the cluster itself is checked when training starts


if __name__ == "__main__":
    unittest.main()
