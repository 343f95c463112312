class UserError(Exception):
    """A mistake in a recipe, an input file or the command line.

    The CLI prints the message as one line and exits with code 2, so the message must name
    the file, line or key at fault and what was expected.
    """
