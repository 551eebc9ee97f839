"""Entry point for ``python -m reportgen``."""

from reportgen.cli import entry

if __name__ == "__main__":
    entry()
