"""Imports TensorFlow with its C++ start-up log lines (oneDNN notice, CPU features) silenced.

TF 2.21 writes them to stderr before its logging honours TF_CPP_MIN_LOG_LEVEL; they would bury
the single `error: ...` line that the command line promises for bad input or a diverged run.
"""

import os


def import_tensorflow():
    import sys

    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401  (imports TensorFlow, its backend)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
