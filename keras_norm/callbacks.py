"""The Keras callback that keeps a run's history (the others a run uses are Keras's own)."""

import time

import keras


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
        self.log(f"{self.label} epoch {epoch + 1}/{self.epochs}: loss {row.get('loss', float('nan')):.4f} "
                 f"acc {row.get('accuracy', float('nan')):.4f} test_loss {row.get('val_loss', float('nan')):.4f} "
                 f"test_acc {row.get('val_accuracy', float('nan')):.4f} ({row['seconds']:.1f} s)", flush=True)
