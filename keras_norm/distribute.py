"""tf.distribute for keras-norm: which strategy trains the model.

`none` uses TensorFlow's default (single-device) strategy; `mirrored` replicates the model over all
local GPUs (or, without GPUs, over the logical CPU devices that `logical_cpus` makes). The batch
size the user gives is the global batch: each of R replicas sees batch_size / R examples, and
BatchNormalization then uses `synchronized=True` so its statistics cover the global batch.

`multi_worker` (MultiWorkerMirroredStrategy) is refused with a clear message: Keras 3's
`model.fit` fails under it (its per-replica reduction of scalar metrics raises; upstream
keras-team/keras#20585, tensorflow/tensorflow#72388), and this project trains with `model.fit`.
"""

MULTI_WORKER_BLOCKED = (
    "--distribute=multi_worker is not available: Keras 3's model.fit fails under "
    "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --distribute=mirrored on one machine"
)


def split_cpu(count):
    """Splits the CPU into `count` logical devices; must run before TensorFlow initializes them."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_strategy(name, logical_cpus=0):
    import tensorflow as tf

    if logical_cpus > 1:
        split_cpu(logical_cpus)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()
