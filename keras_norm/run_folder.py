"""One run's folder, `artifacts/runs/<run>/`: its paths, fresh start or resume, and its small files.

Small files (committed): config.json, history.json, history.csv, metrics.json, inside.json, summary.txt,
misclassified.json. Binaries (git-ignored): best.weights.h5 (the validation-best weights while
training), model.keras, saved_model/, backup/ (BackupAndRestore), tensorboard/.

Every reader of a run goes through this class, so a run's files are read with one policy: a missing
history is empty, an unreadable one is a KerasNormError naming the file.
"""

import os
import shutil

import h5py

from keras_norm import fileio
from keras_norm.errors import KerasNormError

# Every epoch row: training loss (with the L1/L2 penalty) and data loss `xent`, then the same on the validation
# split (val_*) and on the test set (test_*), and the epoch's seconds.
HISTORY_KEYS = ("epoch", "loss", "accuracy", "xent", "val_loss", "val_accuracy", "val_xent", "test_loss",
                "test_accuracy", "test_xent", "seconds")


def run_dir(config):
    """The folder of a run: <artifacts>/runs/<its name>."""
    return os.path.join(config.outputs.artifacts_dir, "runs", config.folder_name)


class RunFolder:
    def __init__(self, path):
        self.path = path

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.path))

    # Reading -------------------------------------------------------------------------------------
    def read(self, name, default=None):
        """A JSON file of the run; `default` when it does not exist."""
        path = self.file(name)
        if not os.path.exists(path):
            return default
        try:
            return fileio.read_json(path)
        except (OSError, ValueError) as e:
            raise KerasNormError(f"{path} is unreadable: {type(e).__name__}: {e}") from None

    def history(self):
        """The epoch rows of history.json ([] before the first epoch)."""
        rows = self.read("history.json", {"epochs": []})
        if not isinstance(rows, dict) or not isinstance(rows.get("epochs"), list):
            raise KerasNormError(f"{self.file('history.json')} has no list of epochs")
        return rows["epochs"]

    def finished_metrics(self):
        """metrics.json of a finished run, else None (also when it is unreadable)."""
        try:
            metrics = self.read("metrics.json")
        except KerasNormError:
            return None
        return metrics if isinstance(metrics, dict) and metrics.get("status") == "finished" else None

    # Writing -------------------------------------------------------------------------------------
    def write(self, name, obj):
        fileio.write_json(self.file(name), obj)

    def write_history(self, rows):
        """history.json and history.csv, one row per epoch."""
        self.write("history.json", {"epochs": rows})
        fileio.write_text(self.file("history.csv"), history_csv(rows))

    def prepare(self, overwrite=False):
        """Makes the folder ready to train; returns True when an interrupted run will resume.

        `overwrite` starts from scratch. A backup torn by a kill during its first save is dropped.
        A fresh start removes what an earlier, failed attempt left, so nothing of it leaks in."""
        if overwrite and os.path.isdir(self.path):
            shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)
        for name in os.listdir(self.path):  # a write that a kill interrupted
            if name.startswith(".tmp-"):
                os.remove(self.file(name))
        backup = self.file("backup")
        if os.path.isdir(backup) and not usable_backup(backup):
            shutil.rmtree(backup)
        if os.path.isdir(backup):
            return True
        for stale in ("history.json", "history.csv", "metrics.json", "inside.json", "best.weights.h5", "model.keras"):
            if os.path.exists(self.file(stale)):
                os.remove(self.file(stale))
        return False

    def drop_backup(self):
        shutil.rmtree(self.file("backup"), ignore_errors=True)


def history_csv(rows):
    keys = [k for k in rows[0] if k != "epoch"] if rows else []
    lines = [",".join(["epoch"] + keys)]
    for r in rows:
        lines.append(",".join([str(r["epoch"])] + [repr(r.get(k, "")) for k in keys]))
    return "\n".join(lines) + "\n"


def usable_backup(backup_dir):
    """True unless every weights file in a BackupAndRestore folder is unreadable (torn by a kill)."""
    meta = os.path.join(backup_dir, "training_metadata.json")
    if os.path.exists(meta):
        try:
            fileio.read_json(meta)
        except ValueError:
            return False  # torn metadata: Keras would fail on it, so start over
    files = [f for f in os.listdir(backup_dir) if ".weights.h5" in f]  # latest.weights.h5 and its .bkp
    for name in files:
        try:
            h5py.File(os.path.join(backup_dir, name), "r").close()
            return True
        except OSError:
            pass
    return not files
