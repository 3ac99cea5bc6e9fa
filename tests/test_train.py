import os
import tempfile
import unittest

import numpy as np

from keras_norm import data, evaluate, train
from keras_norm.config import RunConfig
from keras_norm.errors import KerasNormError
from tests import helpers

RUN_FILES = ("config.json", "history.json", "history.csv", "metrics.json", "summary.txt", "model.keras",
             "misclassified.json", "saved_model")



class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.npz = helpers.write_small_npz(cls.tmp.name, n_train=384, n_test=128)
        cls.config = RunConfig.create(norm="ln", l2=1e-3, epochs=1, batch_size=32, data_path=cls.npz,
                                      artifacts_dir=os.path.join(cls.tmp.name, "artifacts"))
        cls.metrics = train.train(cls.config, log=lambda *a, **k: None, verbose=0)
        cls.folder = train.run_dir(cls.config)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_one_epoch_writes_every_output(self):
        self.assertEqual(os.path.basename(self.folder), "ln_l2-0.001_epochs-1_bs-32")
        for name in RUN_FILES:
            self.assertTrue(os.path.exists(os.path.join(self.folder, name)), name)
        config = helpers.read_json(os.path.join(self.folder, "config.json"))
        self.assertEqual(config["flags"]["l2"], 1e-3)
        self.assertEqual(config["dataset"]["train_size"] + config["dataset"]["val_size"], 384)
        self.assertGreater(config["dataset"]["val_size"], 0)
        self.assertIn("val_indices_sha256", config["dataset"])
        self.assertIn("tensorflow", config["versions"])
        history = helpers.read_json(os.path.join(self.folder, "history.json"))["epochs"]
        self.assertEqual([r["epoch"] for r in history], [1])
        with open(os.path.join(self.folder, "history.csv")) as f:
            self.assertEqual(len(f.read().strip().splitlines()), 2)
        self.assertEqual(self.metrics["status"], "finished")
        self.assertEqual(self.metrics["final_test_accuracy"], history[-1]["test_accuracy"])
        self.assertLess(self.metrics["params"], 8000)
        self.assertIn("Total params", helpers.read_text(os.path.join(self.folder, "summary.txt")))
        self.assertFalse(os.path.exists(os.path.join(self.folder, "backup")))

    def test_model_keras_is_plain_keras_and_the_saved_model_returns_the_same_logits(self):
        import keras
        import tensorflow as tf

        model = keras.saving.load_model(os.path.join(self.folder, "model.keras"), safe_mode=True)
        # Trained with the speed engine, saved as the Keras model: no project class inside.
        self.assertTrue(all(type(layer).__module__.startswith("keras.") for layer in model.layers))
        exported = tf.saved_model.load(os.path.join(self.folder, "saved_model"))
        pixels = (255 * data.raw_test_set(self.npz)[0][:32, :, :, None]).astype(np.float32)  # raw 0-255 digits
        diff = np.abs(np.asarray(model(pixels, training=False)) - exported.serve(tf.constant(pixels)).numpy()).max()
        self.assertLessEqual(diff, 1e-5)

    def test_the_exported_model_takes_raw_pixels_and_agrees_with_the_standardized_path(self):
        import keras

        from keras_norm import model as model_lib

        deployed = keras.saving.load_model(os.path.join(self.folder, "model.keras"), safe_mode=True)
        self.assertTrue(model_lib.takes_raw_pixels(deployed))
        self.assertEqual(self.metrics["model_input"], "raw pixels 0-255, shape (N, 28, 28, 1)")
        plain = model_lib.build_from_config(self.config.learning)  # what trained: standardized input
        plain.set_weights(deployed.get_weights())
        self.assertFalse(model_lib.takes_raw_pixels(plain))
        ds = data.load(self.npz)
        pixels = 255 * data.raw_test_set(self.npz)[0][..., None]
        np.testing.assert_allclose(deployed.predict(pixels, verbose=0), plain.predict(ds.x_test, verbose=0),
                                   rtol=1e-4, atol=1e-4)
        x01 = data.raw_test_set(self.npz)[0]
        for model in (deployed, plain):  # model_input feeds each model what it takes
            np.testing.assert_allclose(model.predict(model_lib.model_input(model, x01, ds.mean, ds.std), verbose=0),
                                       plain.predict(ds.x_test, verbose=0), rtol=1e-4, atol=1e-4)

    def test_misclassified_are_exactly_the_wrong_predictions_most_confident_first(self):
        import keras

        from keras_norm import model as model_lib

        model = model_lib.build_from_config(self.config.learning)  # the exported weights, standardized input
        model.set_weights(keras.saving.load_model(os.path.join(self.folder, "model.keras")).get_weights())
        ds = data.load(self.npz)
        probs = np.asarray(keras.ops.softmax(model.predict(ds.x_test, verbose=0)))
        picked = evaluate.misclassified(model, ds)
        wrong = np.flatnonzero(probs.argmax(1) != ds.y_test)
        self.assertEqual(sorted(i["index"] for i in picked["images"]), wrong.tolist())
        self.assertEqual(picked["errors"], len(wrong))
        confidences = [i["p_pred"] for i in picked["images"]]
        self.assertEqual(confidences, sorted(confidences, reverse=True))
        for item in picked["images"]:
            self.assertNotEqual(item["true"], item["pred"])
            self.assertEqual(item["true"], ds.y_test[item["index"]])
            self.assertGreaterEqual(item["p_pred"], item["p_true"])
        confusion = np.array(picked["confusion"])
        self.assertEqual(confusion.sum(), len(ds.y_test))
        self.assertEqual(confusion.sum() - np.trace(confusion), len(wrong))

    def test_metrics_choose_on_validation_and_report_test(self):
        history = helpers.read_json(os.path.join(self.folder, "history.json"))["epochs"]
        for key in ("val_accuracy", "val_xent", "test_accuracy", "test_xent", "xent"):
            self.assertIn(key, history[0])
        best = max(range(len(history)), key=lambda i: (history[i]["val_accuracy"], -history[i]["val_xent"]))
        self.assertEqual(self.metrics["val_best_epoch"], best + 1)
        self.assertEqual(self.metrics["exported_epoch"], best + 1)
        self.assertIn(f"epoch {best + 1} (", self.metrics["exported_because"])
        self.assertEqual(self.metrics["test_accuracy_at_val_best"], history[best]["test_accuracy"])
        self.assertEqual(self.metrics["final_test_accuracy"], history[-1]["test_accuracy"])

    def test_finished_run_is_not_retrained(self):
        again = train.train(self.config, log=lambda *a, **k: None, verbose=0)
        self.assertTrue(again.get("skipped"))
        self.assertEqual(again["final_test_accuracy"], self.metrics["final_test_accuracy"])

    def test_keras_layers_train_too(self):
        config = self.config.replace(fast=False, export=False, run_name="plain")
        metrics = train.train(config, log=lambda *a, **k: None, verbose=0)
        self.assertEqual(metrics["status"], "finished")
        self.assertEqual(metrics["params"], self.metrics["params"])

    def test_divergence_marks_run_failed(self):
        config = self.config.replace(norm="none", l2=0.0, lr=1e6, schedule="constant", export=False)
        with self.assertRaisesRegex(KerasNormError, "diverged"):
            train.train(config, log=lambda *a, **k: None, verbose=0)
        metrics = helpers.read_json(os.path.join(train.run_dir(config), "metrics.json"))
        self.assertEqual(metrics["status"], "failed")
        self.assertIn("NaN", metrics["reason"])


if __name__ == "__main__":
    unittest.main()
