"""The one exception type for mistakes a user can make (bad files, bad options).

The CLI prints its message on one line and exits with code 2; anything else is a bug.
"""


class SiftError(Exception):
    """A user-caused error. The message says what is wrong and what to do."""
