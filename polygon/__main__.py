"""``python -m polygon``: the ``polygon-stream`` command, for environments without its script."""

from polygon.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
