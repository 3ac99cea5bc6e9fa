"""Training-speed benchmark: the project's training path against plain `model.fit` on NumPy arrays.

    python -m keras_norm.bench --data_path=../shared/data/mnist.npz [--steps=100 --repeats=3]

For each norm it builds the project's default model twice with the same weights, warms both up,
then times `steps` training steps of each, interleaved, `repeats` times (the median counts), and
prints one JSON line per norm plus one with the peak resident memory of the process. Times on a
shared machine drift, so only the ratio measured within one run (`speedup`) is meaningful.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def _time_fit(model, data, steps, **kwargs):
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, **kwargs)
    return time.perf_counter() - start


def bench_norm(norm, dataset, steps, repeats, batch_size=128):
    import keras

    from keras_norm import data, model as model_lib, train
    from keras_norm.config import Config

    config = Config(norm=norm, batch_size=batch_size)
    keras.utils.set_random_seed(0)
    project = model_lib.build_from_config(config)
    baseline = model_lib.build_from_config(config)
    baseline.set_weights(project.get_weights())
    train.compile_model(project, config, steps)
    # The plain baseline: Keras defaults except the (identical) optimizer and loss.
    baseline.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    pipe = data.train_pipeline(dataset, batch_size, seed=0, augment=config.augment,
                               rotation_degrees=config.rotation_degrees).repeat()
    x, y = dataset.x_train, dataset.y_train
    n = steps * batch_size
    _time_fit(project, pipe, max(2, steps // 5))  # warm-up: tracing, thread pools
    baseline.fit(x[:max(2, steps // 5) * batch_size], y[:max(2, steps // 5) * batch_size],
                 batch_size=batch_size, epochs=1, verbose=0)
    base_t, proj_t = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        baseline.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0)
        base_t.append(time.perf_counter() - start)
        proj_t.append(_time_fit(project, pipe, steps))
    base_ips = n / float(np.median(base_t))
    proj_ips = n / float(np.median(proj_t))
    return {"norm": norm, "baseline_images_per_sec": round(base_ips, 1), "images_per_sec": round(proj_ips, 1),
            "speedup": round(proj_ips / base_ips, 3), "steps": steps, "repeats": repeats,
            "batch_size": batch_size}


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", default=None, help="Keras-layout MNIST .npz")
    parser.add_argument("--norms", default="bn,gn,ln")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="a few steps only: checks the harness, not speed")
    args = parser.parse_args(argv)
    if args.short:
        args.steps, args.repeats = 4, 1
    from keras_norm import data
    from keras_norm.errors import KerasNormError
    from keras_norm.quiet import import_tensorflow

    try:
        dataset = data.load(args.data_path, train_limit=args.steps * 128)
        if len(dataset.y_train) < args.steps * 128:
            raise KerasNormError(f"{args.steps} steps of 128 need {args.steps * 128} training images, "
                                 f"the data has {len(dataset.y_train)}")
    except KerasNormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    import_tensorflow()
    for norm in args.norms.split(","):
        print(json.dumps(bench_norm(norm, dataset, args.steps, args.repeats)), flush=True)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
