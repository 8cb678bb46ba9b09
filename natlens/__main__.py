"""``python -m natlens``: the ``natlens`` command (``natlens.cli_errors.entry``)."""

from natlens.cli_errors import entry

if __name__ == "__main__":
    entry()
