"""``python cli.py COMMAND`` from a checkout: the ``reels-emotion`` command line.

A shim; the implementation is :mod:`reels_emotion.cli` (also ``python -m reels_emotion``
and the ``reels-emotion`` console script).
"""
from reels_emotion.cli import main

raise SystemExit(main())
