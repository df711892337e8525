"""Lets `python -m correlator` behave like the `correlator` console script."""

from correlator.cli import main

raise SystemExit(main())
