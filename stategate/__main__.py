"""The `stategate` command, and the one module that knows every layer.

The CLI (`app/cli.py`) runs the commands; a node's HTTP API (`views/api.py`)
is handed to it here, so that nothing in `app/` imports `views/`.
"""

from __future__ import annotations

from stategate.app.cli import main as run_command
from stategate.views.api import create_api


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `stategate` console script and of `python -m stategate`."""
    run_command(argv, create_api=create_api)


if __name__ == "__main__":
    main()
