"""A drop-in `keras.layers.RandomRotation` whose rotations run the project's C++ kernel.

The input pipeline rotates every training batch by a random angle (keras_norm/pipeline.py). Keras draws the
angles and builds one transform per image; TensorFlow's ImageProjectiveTransformV3 then computes each output
value on its own, on the same two cores that train (most of the pipeline's 1.3 ms of op time per step in
docs/performance.md's profile). `FastRandomRotation` keeps all of Keras's layer (the random draws, the
transforms) and hands only that last op to `native.affine_transform` (kernels/affine.cc): the same float
operations, so the same values bit for bit (tests/test_rotation.py); the pipeline's op time per step then
falls to 0.3 ms.

It applies to bilinear interpolation with a constant fill, channels-last float32 batches, on the CPU; anything
else, or no C++ compiler, runs Keras's own code.
"""

import keras
import tensorflow as tf

from keras_norm.engine import native


@keras.saving.register_keras_serializable(package="keras_norm.engine")
class FastRandomRotation(keras.layers.RandomRotation):
    """`keras.layers.RandomRotation`; its image transform runs the C++ kernel when it applies (module doc)."""

    def __init__(self, factor, native=True, **kwargs):
        super().__init__(factor, **kwargs)
        self.native = native

    def kernel_applies(self, images, interpolation):
        """Whether this transform is one the C++ kernel computes."""
        return (interpolation == "bilinear" and self.fill_mode == "constant" and self.data_format == "channels_last"
                and images.shape.rank == 4 and images.dtype == tf.float32 and native.usable(self.native, images))

    def _transform_images(self, images, transformation, interpolation):
        # Keras's one hook between its random transforms and the backend's affine_transform.
        if not (isinstance(images, tf.Tensor) and self.kernel_applies(images, interpolation)):
            return super()._transform_images(images, transformation, interpolation)
        transforms = tf.reshape(transformation["rotation_matrix"], (-1, 8))
        return native.affine_transform(images, transforms, self.fill_value)

    def get_config(self):
        return {**super().get_config(), "native": self.native}
