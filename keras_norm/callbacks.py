"""The project's Keras callbacks: the test evaluation after every epoch, the run's history, and Keras's
ModelCheckpoint made atomic. The others a run uses are Keras's own (BackupAndRestore, TerminateOnNaN, TensorBoard).
"""

import os
import time

import keras

from keras_norm.evaluate import selection_key


class TestEvaluation(keras.callbacks.Callback):
    """Evaluates the test set after every epoch and adds `test_<metric>` to the epoch's logs.

    Keras's `validation_data` is the validation split, which chooses the checkpoint; the test curves are
    only reported (Graph 1 and 2). Put this callback first: later callbacks see the test numbers."""

    def __init__(self, test_data):
        super().__init__()
        self.test_data = test_data

    def on_epoch_end(self, epoch, logs=None):
        result = self.model.evaluate(self.test_data, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"test_{k}": float(v) for k, v in result.items()})


class EpochLog(keras.callbacks.Callback):
    """Keeps history.json and history.csv complete after every epoch and logs one line per epoch.

    Rows are keyed by epoch, so an epoch repeated after a crash-and-resume replaces the old row
    and the history holds every epoch exactly once.
    """

    def __init__(self, folder, label, epochs, log):
        super().__init__()
        self.folder, self.label, self.epochs, self.log = folder, label, epochs, log
        self.rows = {r["epoch"]: r for r in folder.history()}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        self.rows = {e: r for e, r in self.rows.items() if e < epoch + 1}
        self.rows[epoch + 1] = row
        self.folder.write_history([self.rows[e] for e in sorted(self.rows)])
        shown = " ".join(f"{k} {row[k]:.4f}" for k in ("loss", "accuracy", "val_xent", "val_accuracy", "test_xent",
                                                           "test_accuracy") if k in row)
        self.log(f"{self.label} epoch {epoch + 1}/{self.epochs}: {shown} ({row['seconds']:.1f} s)", flush=True)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's ModelCheckpoint, but each file is written beside its place and renamed into it: a kill during a
    save never leaves a torn checkpoint for the resumed run to load. (It overrides `_save_model`, a private
    method of Keras 3.15, the version setup.cfg pins.)"""

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
        folder, name = os.path.split(final)
        self.filepath = os.path.join(folder, ".tmp-" + name)  # still ends in .weights.h5 / .keras
        if os.path.exists(self.filepath):  # torn by a kill: HDF5 cannot write over it cleanly
            os.remove(self.filepath)
        try:
            super()._save_model(epoch, batch, logs)
        finally:
            temporary, self.filepath = self.filepath, final
        if os.path.exists(temporary):
            os.replace(temporary, final)


class ValidationBestCheckpoint(AtomicModelCheckpoint):
    """Saves the weights of the best epoch so far on the validation split, ranked by `evaluate.selection_key`:
    the highest validation accuracy, and among equals the lowest validation data loss. Keras's own
    `save_best_only` compares one metric and keeps the earliest of equals. After a resume, `seen` (the history's
    rows) says what the saved weights already beat."""

    def __init__(self, filepath, seen=()):
        super().__init__(filepath, save_weights_only=True)
        self.best_key = max((selection_key(r) for r in seen), default=None)

    def _should_save_model(self, epoch, batch, logs, filepath):
        key = selection_key(logs or {})
        if self.best_key is not None and key <= self.best_key:
            return False
        self.best_key = key
        return True
