"""Atomic writes: a crash never leaves a half-written JSON, CSV or text result."""

import json
import os
import tempfile

from keras_norm.errors import KerasNormError


def _default_mode():
    """0666 less the process umask: what `open(path, "w")` would give (mkstemp alone gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text(path, text):
    """Writes `text` to a temporary file beside `path`, then renames it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
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
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise KerasNormError(f"output folder {folder!r} is not writable: {e.strerror or e}") from None
