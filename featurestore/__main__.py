"""``python -m featurestore``: the same command line as ``reels-emotion`` (:mod:`reels_emotion.cli`)."""
import sys

from reels_emotion.cli import main

sys.exit(main())
