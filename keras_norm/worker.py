"""One run in a process of its own: the body of every parallel training (the process pool's and the cluster's).

`python -m keras_norm.worker CONFIG RESULT` trains the pickled RunConfig in CONFIG and pickles its result into
RESULT: how a cluster task (keras_norm/cluster.py) trains a run in a fresh process, since TensorFlow's thread pools
and op determinism are set once per process.
"""

import pickle
import sys

from keras_norm.errors import KerasNormError
from keras_norm.quiet import import_tensorflow


def train_one(config):
    """Trains one run; a failure comes back as a `failed` result."""
    import_tensorflow()
    from keras_norm import train  # noqa: I001  (after the quiet TensorFlow import: train imports TensorFlow)

    try:
        return train.train(config, verbose=0)
    except KerasNormError as e:
        return {"status": "failed", "name": config.name, "seed": config.learning.seed, "reason": str(e)}


def main(argv):
    with open(argv[1], "rb") as f:
        config = pickle.load(f)
    result = train_one(config)
    with open(argv[2], "wb") as f:  # a private temporary file, read once this process has exited
        pickle.dump(result, f)


if __name__ == "__main__":
    main(sys.argv)
