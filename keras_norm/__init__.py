"""keras-norm: Batch, Layer and Group Normalization (plus L1/L2) on a small MNIST CNN.

Importing the package is cheap: TensorFlow is imported only by the modules that train, build or
evaluate models, so the command line can reject bad input before paying for that import.
"""

from keras_norm import quiet  # noqa: F401  (sets TensorFlow's log level before anything imports it)
from keras_norm.config import RunConfig
from keras_norm.errors import KerasNormError

__all__ = ["RunConfig", "KerasNormError"]
__version__ = "0.3.0"
