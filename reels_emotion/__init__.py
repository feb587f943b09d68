"""The ``reels-emotion`` command line (:mod:`reels_emotion.cli`), over ``featurestore`` and ``fusion``."""
