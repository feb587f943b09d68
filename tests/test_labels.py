import pytest

from featurestore.labels import UnknownLabelError, known_aliases, normalise_label
from featurestore.schema import CLASSES

COMPETITION_SPELLINGS = {
    "Marah": "Anger", "Marh": "Anger", "Kaget": "Surprise", "Terkejut": "Surprise",
    "Terkjut": "Surprise", "Trkejut": "Surprise", "Trekejut": "Surprise", "Bangga": "Proud",
    "Percaya": "Trust", "Faith": "Trust", "Loyalty": "Trust", "Sad": "Sadness",
    "Takut": "Fear", "Senang": "Joy", "Bahagia": "Joy", "Sedih": "Sadness", "Netral": "Neutral",
}


@pytest.mark.parametrize("raw,label", sorted(COMPETITION_SPELLINGS.items()))
def test_competition_spellings(raw, label):
    assert normalise_label(raw) == label
    assert normalise_label(f"  {raw.upper()} ") == label
    assert normalise_label(raw.lower()) == label


@pytest.mark.parametrize("name", CLASSES)
def test_class_names_map_to_themselves(name):
    assert normalise_label(name) == name
    assert normalise_label(name.lower()) == name


def test_every_alias_maps_to_a_class():
    assert set(known_aliases().values()) == set(CLASSES)
    for key, label in known_aliases().items():
        assert normalise_label(key) == label


def test_blank_is_unlabelled():
    assert normalise_label(None) is None
    assert normalise_label("  ") is None


@pytest.mark.parametrize("raw", ["Love", "anger?!x", "Cinta", "7"])
def test_unknown_label_names_the_value(raw):
    with pytest.raises(UnknownLabelError, match=repr(raw).replace("?", r"\?")):
        normalise_label(raw)
