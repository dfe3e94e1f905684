"""The one exception type for user errors: the CLI prints its message on one line and exits 2."""


class GanforgeError(Exception):
    """A problem with the user's input (config, files, run directory) that they can fix.

    The message names the file, key or value and says what would be accepted.
    """
