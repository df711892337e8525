"""Lets `python -m correlator` behave like the `correlator` console script."""

from correlator.cli import main

if __name__ == "__main__":  # not again in the analysis processes it spawns
    raise SystemExit(main())
