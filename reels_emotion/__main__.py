"""``python -m reels_emotion``: the ``reels-emotion`` command line."""
import sys

from reels_emotion.cli import main

sys.exit(main())
