"""Atomic writes: a crash never leaves a half-written JSON/CSV/text result."""

import json
import os
import tempfile


def write_text(path, text):
    """Writes `text` to a temporary file beside `path`, then renames it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_writable(folder):
    """Creates `folder` if needed and proves a file can be written there."""
    from keras_norm.errors import KerasNormError

    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise KerasNormError(f"output folder {folder!r} is not writable: {e.strerror or e}") from None
