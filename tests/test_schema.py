
import pytest

from engine.schema import DEFAULT_SCHEMA, NUM_GRADES, Schema, SchemaError, SubLabel


def test_default_schema_has_the_six_sublabels():
    assert DEFAULT_SCHEMA.names == (
        "central_involvement", "pupil_area_obscured", "sectors_involved",
        "radial_extent", "opacity_density", "morphology",
    )
    assert [(s.minimum, s.maximum) for s in DEFAULT_SCHEMA.sublabels] == [(0, 2), (0, 5), (0, 8), (0, 3), (0, 3), (0, 3)]
    assert all(s.description for s in DEFAULT_SCHEMA.sublabels)
    assert len(DEFAULT_SCHEMA.grade_names) == NUM_GRADES


def test_round_trip_through_json(tmp_path):
    path = tmp_path / "schema.json"
    DEFAULT_SCHEMA.save(path)
    loaded = Schema.load(path)
    assert loaded == DEFAULT_SCHEMA
    assert loaded.fingerprint() == DEFAULT_SCHEMA.fingerprint()


def test_custom_schema_of_n_sublabels(tmp_path):
    custom = Schema(sublabels=(SubLabel("haze", "ordinal", 1, 4, "Haze."), SubLabel("dots", "count", 0, 20, "Dots.")))
    custom.save(tmp_path / "s.json")
    loaded = Schema.load(tmp_path / "s.json")
    assert loaded.names == ("haze", "dots")
    assert loaded.fingerprint() != DEFAULT_SCHEMA.fingerprint()


def test_validate_partial_values():
    out = DEFAULT_SCHEMA.validate({"central_involvement": "1", "sectors_involved": 8, "morphology": ""})
    assert out["central_involvement"] == 1 and out["sectors_involved"] == 8
    assert out["morphology"] is None and out["radial_extent"] is None


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"central_involvement": 3}, "outside 0-2"),
        ({"sectors_involved": -1}, "outside 0-8"),
        ({"radial_extent": "two"}, "not an integer"),
        ({"opacity_density": 1.5}, "not an integer"),
        ({"colour": 1}, "unknown sub-label 'colour'"),
    ],
)
def test_validate_refuses_bad_values(values, fragment):
    with pytest.raises(SchemaError, match=fragment):
        DEFAULT_SCHEMA.validate(values)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"sublabels": []}, "at least one"),
        ({"version": 99, "sublabels": []}, "newer"),
        ({"sublabels": [{"name": "a", "maximum": 2}, {"name": "a", "maximum": 3}]}, "duplicate"),
        ({"sublabels": [{"name": "a", "minimum": 2, "maximum": 2}]}, "must exceed"),
        ({"sublabels": [{"name": "a"}]}, "lacks the field 'maximum'"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_schema_files_are_refused(data, fragment):
    with pytest.raises(SchemaError, match=fragment):
        Schema.from_dict(data)


def test_load_reports_invalid_json(tmp_path):
    p = tmp_path / "schema.json"
    p.write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.load(p)
    with pytest.raises(SchemaError, match="no such schema file"):
        Schema.load(tmp_path / "missing.json")


def test_grade_descriptions_travel_with_the_schema_and_default_for_older_cards():
    from engine.schema import DEFAULT_GRADE_DESCRIPTIONS

    data = DEFAULT_SCHEMA.to_dict()
    assert data["grade_descriptions"] == list(DEFAULT_GRADE_DESCRIPTIONS) and len(DEFAULT_GRADE_DESCRIPTIONS) == 8
    data["grade_descriptions"] = [f"clinic {g}" for g in range(8)]
    custom = Schema.from_dict(data)
    assert custom.grade_description(3) == "clinic 3" and custom.grade_description(9) == ""
    assert custom.fingerprint() == DEFAULT_SCHEMA.fingerprint()  # wording only: models stay compatible
    del data["grade_descriptions"]
    assert Schema.from_dict(data).grade_descriptions == DEFAULT_GRADE_DESCRIPTIONS  # a card written before them


@pytest.mark.parametrize("bad", [["one", "two"], "not a list", [1, 2, 3, 4, 5, 6, 7, 8]])
def test_grade_descriptions_must_be_eight_texts(bad):
    data = {**DEFAULT_SCHEMA.to_dict(), "grade_descriptions": bad}
    with pytest.raises(SchemaError, match="grade"):
        Schema.from_dict(data)
