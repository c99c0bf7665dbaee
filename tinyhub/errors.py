"""The two kinds of expected failure, and the exit status each gives on the command line.

Every error tinyhub raises on purpose derives from `TinyhubError`; its message says what is wrong and how to fix
it, and the `tinyhub` command prints it without a traceback. Anything else is a bug and keeps its traceback.
"""


class TinyhubError(Exception):
    """A failure at run time (network, Hub, corrupt or missing files): exit status 1."""

    exit_code = 1


class UsageError(TinyhubError):
    """The command or configuration asks for something invalid (bad option, unknown model, bad repo id): 2."""

    exit_code = 2
