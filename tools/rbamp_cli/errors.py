"""The CLI's own error: a user-facing problem found while running (not an argparse usage error)."""


class CliError(Exception):
    """Printed as one line ``rbamp: error: <message>``; exit code 1."""


class UsageError(CliError):
    """A combination of options that cannot work; exit code 2 like argparse's own usage errors."""
