"""The one exception type for the user, and the one way a command ends with it."""

import sys


class KerasNormError(Exception):
    """Bad input or a failed run: the message is meant for the user, not a traceback."""


def fail(message, code=1):
    """Ends the command with one `error:` line on stderr and a non-zero exit code."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)
