"""keras-norm: Batch, Layer and Group Normalization (plus L1/L2) on a small MNIST CNN.

Importing the package is cheap: TensorFlow is only imported by the modules that need it,
so the command line can reject bad input before paying for the TensorFlow import.
"""

from keras_norm.config import Config
from keras_norm.errors import KerasNormError

__all__ = ["Config", "KerasNormError"]
__version__ = "0.1.0"
