"""Keras callbacks of a training run (imported only when training: they need Keras)."""

import os
import time

import keras

from keras_norm import fileio


class EpochLog(keras.callbacks.Callback):
    """Keeps history.json complete after every epoch and logs one line per epoch.

    Rows are keyed by epoch, so an epoch repeated after a crash-and-resume replaces the old row
    and the history holds every epoch exactly once.
    """

    def __init__(self, path, label, epochs, log):
        super().__init__()
        self.path, self.label, self.epochs, self.log = path, label, epochs, log
        self.rows = {}
        if os.path.exists(path):
            try:
                self.rows = {r["epoch"]: r for r in fileio.read_json(path).get("epochs", [])}
            except (OSError, ValueError, KeyError, TypeError):
                self.rows = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        self.rows = {e: r for e, r in self.rows.items() if e < epoch + 1}
        self.rows[epoch + 1] = row
        fileio.write_json(self.path, {"epochs": [self.rows[e] for e in sorted(self.rows)]})
        self.log(f"{self.label} epoch {epoch + 1}/{self.epochs}: loss {row.get('loss', float('nan')):.4f} "
                 f"acc {row.get('accuracy', float('nan')):.4f} test_loss {row.get('val_loss', float('nan')):.4f} "
                 f"test_acc {row.get('val_accuracy', float('nan')):.4f} ({row['seconds']:.1f} s)", flush=True)


class StepTimer(keras.callbacks.Callback):
    """Notes (end step, time) after every call of the compiled training function (the benchmark's clock)."""

    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append((batch, time.perf_counter()))
