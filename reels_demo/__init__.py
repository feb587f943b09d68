"""Demo and fixture media, kept out of the library packages.

:mod:`reels_demo.corpus` synthesises talking-face clips (espeak-ng speech muxed with a
moving face) and the labelled demo corpus that ``reels-emotion demo`` runs on; the tests
and benches build their media with it too. ``featurestore`` and ``fusion`` never import it;
only the command line's demo pipeline (:mod:`reels_emotion.demo`) does
(``tests/test_import_graph.py`` checks).
"""
