"""`--predict` on the user's own images, and the exported SavedModel's serving signature."""

import os
import tempfile
import unittest

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_norm import data, predict, train
from keras_norm.config import RunConfig
from keras_norm.errors import KerasNormError
from tests import helpers
from tests.test_cli import run_in_process


class PredictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        npz = helpers.write_small_npz(cls.tmp.name, n_train=256, n_test=64)
        cls.artifacts = os.path.join(cls.tmp.name, "artifacts")
        config = RunConfig.create(norm="gn", epochs=1, batch_size=32, data_path=npz, artifacts_dir=cls.artifacts,
                                  run_name="mine")
        cls.folder = train.train(config, log=lambda *a, **k: None, verbose=0)["folder"]
        cls.digits = data.raw_test_images(npz)[:4]  # MNIST-style 28x28 digits in [0, 1]
        cls.labels = data.raw_test_set(npz)[1][:4]
        cls.paths = []
        for i, digit in enumerate(cls.digits):  # as a user's files: bigger, dark on light, some in colour
            pixels = (255 * (1 - digit)).astype(np.uint8)
            image = Image.fromarray(pixels).resize((84, 84), Image.BILINEAR)
            if i % 2:
                image = Image.merge("RGB", (image, image, image))
            cls.paths.append(os.path.join(cls.tmp.name, f"digit{i}.{'png' if i < 2 else 'jpg'}"))
            image.save(cls.paths[-1])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_preprocessing_brings_a_users_image_back_to_the_mnist_digit(self):
        for path, digit in zip(self.paths, self.digits):
            with self.subTest(path=path):
                recovered = predict.mnist_style(predict.read_grey(path), path)
                self.assertEqual(recovered.shape, (28, 28))
                self.assertGreater(np.corrcoef(recovered.ravel(), digit.ravel())[0, 1], 0.9)

    def test_one_line_per_image_with_the_models_prediction(self):
        code, out, err = run_in_process(f"--predict={','.join(self.paths)}", "--run=mine",
                                        f"--artifacts_dir={self.artifacts}")
        self.assertEqual(code, 0, err)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), len(self.paths))
        model = tf.saved_model.load(os.path.join(self.folder, "saved_model"))
        for path, line in zip(self.paths, lines):
            with self.subTest(path=path):
                self.assertTrue(line.startswith(f"{path}: "))
                image = 255 * predict.mnist_style(predict.read_grey(path))  # raw pixels: the model standardizes
                probs = tf.nn.softmax(model.serve(tf.constant(image[None, ..., None], tf.float32))).numpy()[0]
                self.assertEqual(int(line.split(": ")[1].split()[0]), int(probs.argmax()))
                self.assertIn(f"{probs.argmax()} {probs.max():.3f}", line)

    def test_without_a_run_the_ready_to_try_models_answer(self):
        from keras_norm import pretrained

        code, out, err = run_in_process(f"--predict={self.paths[0]}")
        self.assertEqual(code, 0, err)
        lines = out.strip().splitlines()
        labels = [entry["label"] for entry in pretrained.index().values()]
        self.assertEqual(len(lines), len(labels))
        for line, label in zip(lines, labels):
            self.assertTrue(line.startswith(f"{self.paths[0]}: "), line)
            self.assertIn(f"({label}; top-3: ", line)
        # Trained on the full MNIST, the four models read this MNIST test digit (redrawn dark on light, 84x84) right.
        truth = self.labels[0]
        self.assertEqual(sum(int(line.split(": ")[1].split()[0]) == truth for line in lines), len(lines))

    def test_adapt_bn_re_estimates_the_bn_models_statistics_on_the_images(self):
        from keras_norm import adapt, pretrained

        code, out, err = run_in_process(f"--predict={','.join(self.paths)}", "--adapt_bn")
        self.assertEqual(code, 0, err)
        lines = out.strip().splitlines()
        models = pretrained.load()
        self.assertEqual(len(lines), len(self.paths) * len(models))
        marked = [line for line in lines if "BN adapted to these images" in line]
        self.assertEqual(len(marked), len(self.paths))  # the one BN model, once per image
        [bn_key] = [k for k, (_, m) in models.items() if adapt.bn_layers(m)]
        pixels = 255.0 * np.stack([predict.mnist_style(predict.read_grey(p)) for p in self.paths])[..., None]
        expected = adapt.adapt_bn_statistics(models[bn_key][1], pixels.astype(np.float32))(pixels, training=False)
        for line, logits in zip(marked, expected.numpy()):
            self.assertEqual(int(line.split(": ")[1].split()[0]), int(np.argmax(logits)))
        # A model without BN predicts as before: the GN run's lines with and without --adapt_bn are the same.
        plain = run_in_process(f"--predict={','.join(self.paths)}", "--run=mine", f"--artifacts_dir={self.artifacts}")
        adapted = run_in_process(f"--predict={','.join(self.paths)}", "--run=mine", "--adapt_bn",
                                 f"--artifacts_dir={self.artifacts}")
        self.assertEqual(plain[1], adapted[1])

    def test_bad_images_and_runs_are_one_error_line(self):
        not_an_image = os.path.join(self.tmp.name, "notes.png")
        with open(not_an_image, "w") as f:
            f.write("not a picture")
        blank = os.path.join(self.tmp.name, "blank.png")
        Image.new("L", (30, 30), 255).save(blank)
        cases = {
            (f"--predict={os.path.join(self.tmp.name, 'missing.png')}", "--run=mine"): "does not exist",
            (f"--predict={not_an_image}", "--run=mine"): "not a readable image",
            (f"--predict={blank}", "--run=mine"): "no digit",
            (f"--predict={self.paths[0]}", "--run=nope"): "no run 'nope'",
            (f"--predict={self.paths[0]}", "--run=../mine"): "--run must be",
            ("--run=mine",): "--predict",
            ("--adapt_bn",): "--predict",
        }
        for args, message in cases.items():
            with self.subTest(args=args):
                code, out, err = run_in_process(*args, f"--artifacts_dir={self.artifacts}")
                self.assertNotEqual(code, 0)
                self.assertEqual(out, "")
                lines = err.strip().splitlines()
                self.assertEqual(len(lines), 1, err)
                self.assertIn(message, lines[0])

    def test_a_run_without_saved_model_is_refused(self):
        os.makedirs(os.path.join(self.artifacts, "runs", "bare"))
        with self.assertRaisesRegex(KerasNormError, "no SavedModel"):
            predict.find_run(self.artifacts, "bare")

    def test_the_saved_model_serves_logits_and_loads_as_a_keras_layer(self):
        path = os.path.join(self.folder, "saved_model")
        signature = tf.saved_model.load(path).signatures["serve"]
        [spec] = signature.structured_input_signature[1].values()
        self.assertEqual((spec.shape.as_list(), spec.dtype), ([None, 28, 28, 1], tf.float32))
        layer = keras.layers.TFSMLayer(path, call_endpoint="serve")
        x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype("float32")
        plain = keras.saving.load_model(os.path.join(self.folder, "model.keras"))
        np.testing.assert_allclose(np.asarray(layer(x)), plain(x, training=False).numpy(), atol=1e-5)


if __name__ == "__main__":
    unittest.main()
