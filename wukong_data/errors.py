class UserError(Exception):
    """A mistake in a recipe, an input file or the command line.

    The CLI prints the message as one line and exits with code 2, so the message must name
    the file, line or key at fault and what was expected.
    """


class Incomplete(Exception):
    """Work that could not finish for a reason outside our code (crawl shards that failed, a
    downloader that stopped); the message says what happened and how to resume. Exit code 1."""


class ContractError(Exception):
    """A component broke a rule other code relies on (e.g. a stage returned a row count other
    than it received). A bug, not a user mistake: the CLI shows its traceback."""
