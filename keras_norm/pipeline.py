"""The tf.data input pipelines of training and evaluation."""

import keras
import tensorflow as tf

from keras_norm.engine import rotation


def train_pipeline(ds, batch_size, seed, augment=True, rotation_degrees=7.0, fast=False, deterministic=False):
    """Shuffled, batched, optionally rotated training batches, prefetched.

    fast=True rotates with the speed engine's equal layer (engine/rotation.py: the same images, bit for bit).
    deterministic=True (the run's op determinism) maps the rotation sequentially."""
    pipe = tf.data.Dataset.from_tensor_slices((ds.x_train, ds.y_train))
    pipe = pipe.shuffle(len(ds.y_train), seed=seed, reshuffle_each_iteration=True)
    pipe = pipe.batch(batch_size)
    if augment and rotation_degrees > 0:
        layer = rotation.FastRandomRotation if fast else keras.layers.RandomRotation
        # Rotated-in corners get the background value (0 on the pixel scale, standardized).
        rotate = layer(rotation_degrees / 360.0, fill_mode="constant", fill_value=-ds.mean / ds.std, seed=seed)
        # Under op determinism TensorFlow runs the map sequentially anyway; asking for it directly avoids the
        # rewrite, which TensorFlow 2.21 reports with an error-looking log line (use_unbounded_threadpool).
        parallel = None if deterministic else tf.data.AUTOTUNE
        pipe = pipe.map(lambda x, y: (rotate(x, training=True), y), num_parallel_calls=parallel)
    return pipe.prefetch(tf.data.AUTOTUNE)


def eval_pipeline(x, y, batch_size=1000):
    """Images in order, batched: the validation split or the test set."""
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
