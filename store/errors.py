"""The one exception family the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: an unknown name, a missing path, a mismatched key.

    The message must be a single self-explanatory line; the CLI prints it without a traceback.
    """


class UnknownNameError(UserError, KeyError):
    """A name that no registry (or store listing) knows; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class KeyMismatchError(UserError):
    """A request whose fingerprint key material disagrees with what the store holds."""
