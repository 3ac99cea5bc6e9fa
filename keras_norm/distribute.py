"""tf.distribute for keras-norm: which strategy trains the model, and which process writes.

* `none`: TensorFlow's default (single-device) strategy.
* `mirrored`: `MirroredStrategy` over all local GPUs (or, without GPUs, over the logical CPU devices
  that `logical_cpus` makes).
* `multi_worker`: `MultiWorkerMirroredStrategy`, the cluster read from the standard `TF_CONFIG`
  environment variable. Only the chief writes into `artifacts/`; every other worker keeps its
  run folder (backups for resuming, its own copy of the metrics) under the system's temp folder.

The batch size the user gives is the global batch: each of R replicas sees batch_size / R
examples, and BatchNormalization then uses `synchronized=True` so its statistics cover the global
batch (an all-reduce of the per-replica sums, also across workers).

Keras 3.15's `model.fit` needs two small repairs under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585): its first-batch "symbolic build" reduces the input batch across replicas
(which the collective ops refuse for non-tensors; under `MirroredStrategy` too it fails when the first
batch does not split evenly over the replicas, e.g. a validation split of 21 images on 2 replicas, so the
build from a local batch is used with every multi-replica strategy), and it averages the per-replica scalar metrics with
`strategy.reduce(..., axis=0)`, which fails on scalars. `repair_keras_multi_worker` and
`build_from_local_batch` work around both; nothing changes for the other strategies. Both reach into
private Keras internals, so they check Keras's version first and refuse clearly outside the tested range.
"""

import json
import os
import tempfile

import keras
import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

from keras_norm.errors import KerasNormError

TESTED_KERAS = ((3, 15), (3, 16))  # [low, high) of the Keras versions the repairs below were tested on


def check_keras_version(version=None):
    """Refuses to patch Keras internals outside the tested versions."""
    version = version or keras.__version__
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    low, high = TESTED_KERAS
    if not low <= major_minor < high:
        raise KerasNormError(f"--distribute=multi_worker repairs Keras internals tested with Keras "
                             f"{low[0]}.{low[1]}.x only; installed: Keras {version}")


def split_cpu(count):
    """Splits the CPU into `count` logical devices; must run before TensorFlow initializes them."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def read_tf_config():
    """The parsed `TF_CONFIG` of a multi-worker run; a clear error when it is missing or malformed."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise KerasNormError("--distribute=multi_worker needs the TF_CONFIG environment variable "
                             '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                             '"task": {"type": "worker", "index": 0}})')
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task_type, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise KerasNormError("TF_CONFIG is not valid: it needs cluster.worker (a list of host:port) "
                             "and task.type / task.index") from None
    if not isinstance(workers, list) or not workers:
        raise KerasNormError("TF_CONFIG: cluster.worker must be a non-empty list of host:port")
    if task_type not in tf_config["cluster"] or not 0 <= index < len(tf_config["cluster"][task_type]):
        raise KerasNormError(f"TF_CONFIG: task {task_type}:{index} is not in the cluster")
    return tf_config


def repair_keras_multi_worker():
    """Makes Keras's per-replica metric reduction average scalars across all workers (see module doc)."""
    check_keras_version()
    original = getattr(tf_trainer.reduce_per_replica, "_keras_norm_original", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._keras_norm_original = original
    tf_trainer.reduce_per_replica = reduce_per_replica


def build_from_local_batch(model, batch):
    """Lets `model.fit` build its optimizer and metrics from `batch` (one local, undistributed batch)
    instead of reducing a distributed batch across workers, which fails (see module doc)."""
    check_keras_version()
    original = model._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: original(data_batch=batch)


def make_strategy(name, logical_cpus=0):
    if logical_cpus > 1:
        split_cpu(logical_cpus)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        read_tf_config()
        repair_keras_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """True for the process that writes artifacts: the only one, or the cluster's chief (worker 0
    when the cluster has no `chief` task)."""
    return bool(strategy.extended.should_checkpoint)


def worker_dir(strategy, folder_name):
    """Where a non-chief worker keeps its run folder: outside `artifacts/`, stable across restarts."""
    resolver = strategy.cluster_resolver
    return os.path.join(tempfile.gettempdir(), "keras-norm-workers",
                        f"{resolver.task_type}-{resolver.task_id}", folder_name)


def shard_by_data(pipeline):
    """Every worker reads the in-memory arrays and keeps its share of the batches (no files to shard)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return pipeline.with_options(options)
