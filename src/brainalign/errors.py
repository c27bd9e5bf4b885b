"""Exceptions shared by every stage."""


class InputError(ValueError):
    """Bad user input: a file or option that cannot be used.

    The message always names the offending file (or config key) and says what is wrong, so the
    command line can print it as is. Raised before any output is written.
    """

    def __init__(self, where, problem):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")
