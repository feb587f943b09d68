"""``python -m featurestore``: the same command line as ``cli.py``."""
import sys

from cli import main

sys.exit(main())
