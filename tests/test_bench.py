import json
import os
import tempfile
import time
import unittest

import numpy as np

from tests import helpers
from tests.test_native import HAS_COMPILER


class BenchHarnessTest(unittest.TestCase):
    def test_short_run_prints_one_json_line_per_norm_then_memory(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=3000, n_test=32)
            with np.load(npz) as f:  # four times over: 128 steps of 64 training images, more than the sample has
                arrays = dict(f)
            np.savez(npz, **dict(arrays, **{k: np.concatenate([arrays[k]] * 4) for k in ("x_train", "y_train")}))
            speedup = f"{tmp}/perf/step_speedup.json"
            code, out, err = helpers.run_main("--bench", f"--data_path={npz}", "--bench_steps=128", "--bench_repeats=1",
                                              "--bench_norms=gn", f"--bench_step_speedup={speedup}", "--bench_profile")
            self.assertEqual(code, 0, err[-2000:])
            lines = [json.loads(line) for line in out.strip().splitlines()]
            profiles = [line for line in lines if "by_layer" in line]
            lines = [line for line in lines if "by_layer" not in line]
            self.assertEqual([(p["norm"], p["path"]) for p in profiles], [("gn", "engine"), ("gn", "norm_kernel")])
            for p in profiles:  # the profiled steps' ops land on the model's layers
                self.assertGreater(p["op_ms_per_step"], 0)
                self.assertGreater(p["wall_ms_per_step"], 0)
                self.assertTrue({"conv1", "conv2", "logits"} & set(p["by_layer"]), p["by_layer"])
            self.assertEqual([line.get("norm") for line in lines[:1]], ["gn"])
            self.assertGreater(lines[0]["images_per_sec"], 0)
            self.assertGreater(lines[0]["baseline_images_per_sec"], 0)
            self.assertGreater(lines[0]["free_convs_step_speedup"], 0)
            self.assertGreater(lines[1]["peak_rss_mb"], 0)
            written = helpers.read_json(speedup)  # the conv kernel's step speedup, from the same timings
            self.assertEqual(list(written), ["gn"])
            self.assertEqual(written["gn"]["engine_images_per_sec"], lines[0]["images_per_sec"])
            self.assertEqual(written["gn"]["norm_kernel_images_per_sec"], lines[0]["norm_kernel_images_per_sec"])
            self.assertGreater(written["gn"]["speedup"], 0)

    def test_whole_runs_of_both_paths_are_timed_in_a_temporary_folder(self):
        from unittest import mock

        from keras_norm import model as model_lib
        from keras_norm.bench import runs as bench_runs
        from keras_norm.engine import conv
        from keras_norm.run_folder import RunFolder

        trained = []  # (artifacts folder, whether the run trained without the conv kernels); no training, to keep
        model = model_lib.build_model("gn")  # the suite short

        def fake_train(config, dataset, log, verbose, engine_options):
            layers = bench_runs.train.accelerated(model, config.runtime, engine_options).layers  # what train.build
            norm_kernel = not any(isinstance(layer, conv.FastConv2D) for layer in layers)  # would train
            self.assertEqual(config.runtime.steps_per_execution, 8 if norm_kernel else 64)
            trained.append((config.outputs.artifacts_dir, norm_kernel))
            folder = RunFolder(bench_runs.train.run_dir(config))
            folder.prepare(overwrite=True)
            folder.write_history([{"epoch": 1, "seconds": 2.0 if trained[-1][1] else 1.0}])
            time.sleep(0.2 if trained[-1][1] else 0.1)  # the run itself

        with tempfile.TemporaryDirectory() as tmp, mock.patch.object(bench_runs.train, "train", fake_train):
            npz = helpers.write_small_npz(tmp, n_train=300, n_test=16)
            before = set(os.listdir(tmp))
            line = bench_runs.time_runs("gn", npz, repeats=2)
            self.assertEqual(set(os.listdir(tmp)), before)  # nothing left behind
        self.assertEqual([b for _, b in trained], [False, True, False, True])  # interleaved
        self.assertFalse(any(folder.startswith(tmp) for folder, _ in trained))  # a temporary folder of its own
        self.assertEqual((line["norm"], line["engine_epoch_seconds"], line["norm_kernel_epoch_seconds"]),
                         ("gn", 1.0, 2.0))
        self.assertEqual(line["epoch_speedup"], 2.0)
        self.assertGreater(line["run_speedup"], 1.2)

    def test_train_builds_and_feeds_what_the_engine_options_say(self):
        from unittest import mock

        import keras

        from keras_norm import distribute, engine, pipeline, train
        from keras_norm.bench import paths
        from keras_norm.config import RunConfig
        from keras_norm.engine import conv, dropout, pooling

        strategy = distribute.make_strategy("none", 0)
        config = RunConfig.create(norm="bn")
        kinds, rotation_kernel = {}, {}
        for name, path in paths.NAMES.items():
            _, trainee, _ = train.build(config, strategy, 10, path.engine_options)
            kinds[name] = {type(layer) for layer in trainee.layers}
            with mock.patch.object(pipeline, "train_pipeline", side_effect=StopIteration) as make_pipeline:
                with self.assertRaises(StopIteration):  # stops at the input pipeline: no training
                    train.fit(trainee, None, config, strategy, [], 0, fast_rotation=path.engine_options.fast_rotation)
            rotation_kernel[name] = make_pipeline.call_args.kwargs["fast"]
        fast = {conv.FastConv2D, dropout.FastDropout, pooling.FastMaxPooling2D}
        self.assertTrue(fast <= kinds["engine"])
        self.assertFalse(fast & kinds["norm_kernel"])
        self.assertTrue({keras.layers.Conv2D, keras.layers.Dropout, keras.layers.MaxPooling2D} <= kinds["norm_kernel"])
        self.assertEqual(rotation_kernel, {"engine": True, "norm_kernel": False})
        self.assertEqual(paths.ENGINE.engine_options, engine.Options())  # a run's defaults are the whole engine
        self.assertEqual({name: paths.steps_per_execution(path) for name, path in paths.NAMES.items()},
                         {"engine": RunConfig().runtime.steps_per_execution, "norm_kernel": 8})
        said = []
        distributed = RunConfig.create(norm="bn", distribute="mirrored")
        self.assertEqual(train.steps_per_call(distributed, said.append).runtime.steps_per_execution, 1)
        self.assertEqual(len(said), 1)  # the run's log says why
        self.assertEqual(train.steps_per_call(config, said.append), config)

    def test_parts_give_one_line_each_with_the_gain_of_having_it(self):
        from unittest import mock

        from keras_norm import data
        from keras_norm.bench import paths
        from keras_norm.bench import steps as bench

        with tempfile.TemporaryDirectory() as tmp:
            dataset = data.load(helpers.write_small_npz(tmp, n_train=200, n_test=16))
        # No training: every contender "takes" 10 ms a step, except the path without the rotation kernel (20 ms).
        fake = {"without_rotation": 0.02}
        timed = lambda contenders, *args, **kwargs: {c: fake.get(c, 0.01) for c in contenders}  # noqa: E731
        with mock.patch.object(bench, "_time", timed):
            lines = bench.bench_norm("gn", dataset, steps=16, repeats=1, parts=True)
        self.assertEqual([line.get("without") for line in lines], [None, *paths.PARTS])
        self.assertEqual([line["gain"] for line in lines[1:]], [1.0, 1.0, 1.0, 1.0, 2.0, 1.0])

    def test_each_path_leaves_out_what_it_says(self):
        import keras

        from keras_norm import engine
        from keras_norm import model as model_lib
        from keras_norm.bench import paths
        from keras_norm.engine import conv, dropout, pooling

        def kinds(options):
            fast = engine.accelerate(model_lib.build_model("gn"), options)
            return {(type(layer).__name__, tuple(getattr(layer, "kernel_size", ()))) for layer in fast.layers}

        fast3, fast1 = (conv.FastConv2D.__name__, (3, 3)), (conv.FastConv2D.__name__, (1, 1))
        keras3, keras1 = (keras.layers.Conv2D.__name__, (3, 3)), (keras.layers.Conv2D.__name__, (1, 1))
        fast_dropout, keras_dropout = (dropout.FastDropout.__name__, ()), ("Dropout", ())
        fast_pool, keras_pool = (pooling.FastMaxPooling2D.__name__, ()), ("MaxPooling2D", ())
        every = {fast3, fast1, fast_dropout, fast_pool}
        # part: (layers, rotation kernel, steps per call (None: the runtime's))
        expected = {"conv3x3": ({keras3, fast1, fast_dropout, fast_pool}, True, None),
                    "conv1x1": ({fast3, keras1, fast_dropout, fast_pool}, True, None),
                    "dropout": ({fast3, fast1, keras_dropout, fast_pool}, True, None),
                    "pooling": ({fast3, fast1, fast_dropout, keras_pool}, True, None),
                    "rotation": (every, False, None),
                    "steps_per_execution": (every, True, paths.FEW_STEPS_PER_EXECUTION)}
        self.assertEqual(set(expected), set(paths.PARTS))
        for part, (layers, *rest) in expected.items():
            with self.subTest(part=part):
                path = paths.without(part)
                self.assertLessEqual(layers, kinds(path.engine_options))
                self.assertEqual([path.engine_options.fast_rotation, path.steps_per_execution], rest)
        path = paths.NORM_KERNEL
        self.assertLessEqual({keras3, keras1, keras_dropout, keras_pool}, kinds(path.engine_options))
        self.assertEqual([path.engine_options.fast_rotation, path.steps_per_execution], [False, 8])
        self.assertEqual([paths.ENGINE.engine_options.fast_rotation, paths.ENGINE.steps_per_execution], [True, None])

    @unittest.skipUnless(HAS_COMPILER, "no C++ compiler: no conv kernel to stand in for")
    def test_free_convs_trace_no_convolution(self):
        import tensorflow as tf

        from keras_norm import engine
        from keras_norm import model as model_lib
        from keras_norm.bench import steps as bench
        from tests.test_native import op_types

        fast, spec = engine.accelerate(model_lib.build_model("gn")), tf.TensorSpec((2, 28, 28, 1), tf.float32)

        def loss_and_grads(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(fast(x, training=True))
            return loss, tape.gradient(loss, fast.trainable_weights)

        with bench._free_convs():
            free = op_types(loss_and_grads, spec)
        real = op_types(loss_and_grads, spec)
        self.assertFalse({op for op in free if op.startswith("KerasNormConv3x3")})
        self.assertIn("KerasNormConv3x3FilterGrad", real)  # and the stand-in is gone afterwards

    def test_profile_sums_op_time_per_step_by_type_and_layer(self):
        from keras_norm.bench import profile as profile_step

        events = [("step", "while/body/_1/cnn/conv2_1/convolution", "Conv2D", 3.0),
                  ("step", "while/body/_1/cnn/conv2_bn_1/add", "AddV2", 1.0),
                  ("step", "while/gradient_tape/cnn/conv2_1/convolution/Conv2DBackpropInput", "Conv2D", 5.0),
                  ("step", "while/body/_1/SomeGrad_3", "SomeGrad", 1.0),
                  ("input", "ParallelMapDatasetV2/rotate", "ImageProjectiveTransformV3", 4.0)]
        out = profile_step.summarize(events, steps=2, layers={"conv2", "conv2_bn", "logits"})
        self.assertEqual(out["op_ms_per_step"], 5.0)
        self.assertEqual(out["by_op_type"], {"Conv2D": 4.0, "AddV2": 0.5, "SomeGrad": 0.5})
        self.assertEqual(out["by_layer"], {"conv2": 4.0, "conv2_bn": 0.5, profile_step.OUTSIDE: 0.5})
        self.assertEqual(out["input_pipeline_ms_per_step"], 2.0)

    def test_too_few_steps_to_time_is_one_error_line(self):
        # Timing runs from the end of the first compiled call (64 steps) to the end of the last.
        code, out, err = helpers.run_main("--bench", "--bench_steps=8")
        self.assertEqual(code, 1)
        self.assertEqual(err.strip().splitlines(),
                         ["error: --bench_steps must be at least 128 (two calls of 64 steps)"])
        self.assertEqual(out, "")


if __name__ == "__main__":
    unittest.main()
