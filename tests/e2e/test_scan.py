"""The leak scan looks for every personal field of the catalogue (issue 23 item 4): a field
the catalogue gains without a value in the scan, or a scan key no person has, fails here
before any suite is started."""

from __future__ import annotations

from kit.catalogue import default_catalogue
from tests.e2e.scan import CATALOGUE_VALUES
from tests.e2e.suite import Person


def test_every_personal_field_of_the_catalogue_is_scanned_or_says_why_not() -> None:
    catalogue = default_catalogue()
    fields = {
        f"{name}.{field}"
        for name, resource in catalogue.resources.items()
        for field in resource.fields
    }
    assert set(CATALOGUE_VALUES) == fields


def test_every_value_the_scan_names_is_one_a_person_has_and_unique_to_them() -> None:
    named = {key for keys in CATALOGUE_VALUES.values() if isinstance(keys, tuple) for key in keys}
    first, second = Person.new(), Person.new()
    assert named <= set(first.values())
    for key in named:
        assert first.values()[key] != second.values()[key], key
    # coordinates, the face image and the face bytes are among them
    assert {"latitude", "longitude", "face image", "face bytes"} <= named
