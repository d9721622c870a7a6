"""Errors for bad user input, so flows fail fast with a message that says how to fix it."""


class InputError(ValueError):
    """Bad input from the user: a parameter, a file, a column or a dataset.

    The message always says what is wrong, where, and how to fix it.
    """
