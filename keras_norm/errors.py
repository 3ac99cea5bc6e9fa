"""The one exception type the command line turns into a single line on stderr."""


class KerasNormError(Exception):
    """Bad input or a failed run: the message is meant for the user, not a traceback."""
