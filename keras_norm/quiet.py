"""Quiet TensorFlow: its C++ start-up log lines would bury the one `error:` line of a failed command.

Importing this module (the package does) sets TF_CPP_MIN_LOG_LEVEL once for every entry point,
spawned suite workers included. TF 2.21 still writes a few lines (oneDNN notice, CPU features) to
stderr before its logging honours that variable, so `import_tensorflow` silences file descriptor 2
while TensorFlow loads.
"""

import os
import sys

from keras_norm.errors import KerasNormError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
INSTALL_HINT = 'pip install -e ".[cpu]" (or ".[and-cuda]" on a CUDA machine)'


def import_tensorflow():
    """Imports Keras and TensorFlow with stderr silenced; later imports of them are free."""
    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as e:
        raise KerasNormError(f"TensorFlow is not installed ({e}); install it with {INSTALL_HINT}") from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notes from small predict calls
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # SavedModel export logs every file it writes at INFO
