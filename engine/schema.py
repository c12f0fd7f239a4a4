"""Grades 0-7 and the sub-label schema a clinic grades with.

The default six sub-labels follow LOCS III / Wisconsin conventions for cortical
cataract in retro-illumination. A clinic may replace them with its own
`schema.json`; no other module may assume the names, only their order and ranges.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import EngineError

SCHEMA_VERSION = 1
NUM_GRADES = 8
GRADES = tuple(range(NUM_GRADES))
SUBLABEL_KINDS = ("ordinal", "count")
# What each grade means: the monotone rule the synthetic generator follows (docs/prior-art, "a consistency
# aid, not a validated clinical scale"). A clinic's schema.json may say it in its own words.
DEFAULT_GRADE_DESCRIPTIONS = (
    "No cortical opacity.",
    "Opacity at the lens edge only.",
    "Under 10 % of the pupil obscured, at most 2 sectors, the central zone clear.",
    "10-25 % of the pupil obscured.",
    "25-50 % of the pupil obscured, or opacity touching the central zone.",
    "50-75 % of the pupil obscured.",
    "75-90 % of the pupil obscured, or dense opacity covering the central zone.",
    "Over 90 % of the pupil obscured, or coalescent opacity.",
)


_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def strict_int(text: str) -> int:
    """An integer written in ASCII digits (an optional sign, nothing else); ValueError otherwise.

    Python's int() also takes "0_7", " 7 " and Arabic-Indic "٧"; a grade typed that way is a typo, not a 7.
    """
    if not isinstance(text, str) or not _ASCII_INT.fullmatch(text):
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


_ASCII_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def strict_float(text: str) -> float:
    """A decimal number written in ASCII (digits, a point, an exponent); ValueError otherwise.

    float() also takes "1_0", "٧", "nan" and "infinity"; in labels.csv those are typos, not numbers.
    """
    if not isinstance(text, str) or not _ASCII_DECIMAL.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    return float(text)


class SchemaError(EngineError):
    """A schema file or a sub-label value that does not fit the schema."""


@dataclass(frozen=True)
class SubLabel:
    """One local sub-label: an integer in [minimum, maximum]."""

    name: str
    kind: str
    minimum: int
    maximum: int
    description: str
    levels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise SchemaError(f"sub-label name {self.name!r} must be letters, digits and '_'")
        if self.kind not in SUBLABEL_KINDS:
            raise SchemaError(f"sub-label {self.name!r}: kind {self.kind!r} is not one of {SUBLABEL_KINDS}")
        if self.maximum <= self.minimum:
            raise SchemaError(f"sub-label {self.name!r}: maximum {self.maximum} must exceed minimum {self.minimum}")
        if self.levels and len(self.levels) != self.maximum - self.minimum + 1:
            raise SchemaError(
                f"sub-label {self.name!r}: {len(self.levels)} level names for "
                f"{self.maximum - self.minimum + 1} values"
            )

    @property
    def span(self) -> int:
        return self.maximum - self.minimum

    @property
    def num_values(self) -> int:
        return self.span + 1

    def check(self, value: object) -> int:
        """Return `value` as an int, or raise SchemaError saying why it is not valid."""
        if isinstance(value, bool):
            raise SchemaError(f"{self.name}: {value!r} is not an integer")
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise SchemaError(f"{self.name}: {value!r} is not an integer")
            value = int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                value = strict_int(text)
            except ValueError:
                raise SchemaError(f"{self.name}: {text!r} is not an integer") from None
        if not isinstance(value, int):
            raise SchemaError(f"{self.name}: {value!r} is not an integer")
        if not self.minimum <= value <= self.maximum:
            raise SchemaError(f"{self.name}: {value} is outside {self.minimum}-{self.maximum}")
        return value

    def level_name(self, value: int) -> str:
        return self.levels[value - self.minimum] if self.levels else str(value)


@dataclass(frozen=True)
class Schema:
    """The grades and the ordered sub-labels of one grading protocol."""

    sublabels: tuple[SubLabel, ...]
    name: str = "cortical-locs-wisconsin"
    version: int = SCHEMA_VERSION
    grade_names: tuple[str, ...] = field(default_factory=lambda: tuple(str(g) for g in GRADES))
    grade_descriptions: tuple[str, ...] = DEFAULT_GRADE_DESCRIPTIONS  # what each grade means, for people

    def __post_init__(self) -> None:
        names = [s.name for s in self.sublabels]
        if not names:
            raise SchemaError("a schema needs at least one sub-label")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"duplicate sub-label names: {', '.join(dupes)}")
        if len(self.grade_names) != NUM_GRADES:
            raise SchemaError(f"a schema names {NUM_GRADES} grades, not {len(self.grade_names)}")
        if len(self.grade_descriptions) != NUM_GRADES:
            raise SchemaError(f"a schema describes {NUM_GRADES} grades, not {len(self.grade_descriptions)}")

    def grade_description(self, grade: int) -> str:
        """What `grade` means in this schema ('' for a number outside 0-7)."""
        return self.grade_descriptions[grade] if 0 <= grade < NUM_GRADES else ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sublabels)

    def __len__(self) -> int:
        return len(self.sublabels)

    def get(self, name: str) -> SubLabel:
        for s in self.sublabels:
            if s.name == name:
                return s
        raise SchemaError(f"unknown sub-label {name!r}; this schema has {', '.join(self.names)}")

    def validate(self, values: Mapping[str, object]) -> dict[str, int | None]:
        """Check a (possibly partial) mapping of sub-label values.

        Missing names and None/blank values mean "unknown". Returns a full mapping,
        name -> int or None. Raises SchemaError listing every problem found.
        """
        problems = [f"unknown sub-label {k!r}" for k in values if k not in self.names]
        if problems:
            problems[-1] += f" (the sub-labels are {', '.join(self.names)})"
        out: dict[str, int | None] = {}
        for s in self.sublabels:
            v = values.get(s.name)
            if v is None or (isinstance(v, str) and not v.strip()):
                out[s.name] = None
                continue
            try:
                out[s.name] = s.check(v)
            except SchemaError as e:
                problems.append(str(e))
        if problems:
            raise SchemaError("; ".join(problems))
        return out

    def fingerprint(self) -> str:
        """A short stable identity used to refuse models trained on another schema."""
        import hashlib

        core = [(s.name, s.kind, s.minimum, s.maximum) for s in self.sublabels]
        return hashlib.sha256(json.dumps(core).encode()).hexdigest()[:16]

    # ---- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": "cataract-grader-schema",
            "version": self.version,
            "name": self.name,
            "grades": list(self.grade_names),
            "grade_descriptions": list(self.grade_descriptions),
            "sublabels": [{**asdict(s), "levels": list(s.levels)} for s in self.sublabels],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Schema:
        if not isinstance(data, Mapping):
            raise SchemaError("a schema must be a JSON object")
        version = data.get("version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise SchemaError(f"schema version {version!r} is newer than this app understands ({SCHEMA_VERSION})")
        raw = data.get("sublabels")
        if not isinstance(raw, list):
            raise SchemaError("a schema needs a 'sublabels' list")
        subs = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise SchemaError(f"sub-label #{i + 1} is not an object")
            try:
                subs.append(
                    SubLabel(
                        name=str(item["name"]),
                        kind=str(item.get("kind", "ordinal")),
                        minimum=_json_int(item.get("minimum", 0), "minimum"),
                        maximum=_json_int(item["maximum"], "maximum"),
                        description=str(item.get("description", "")),
                        levels=tuple(str(x) for x in item.get("levels", ())),
                    )
                )
            except KeyError as e:
                raise SchemaError(f"sub-label #{i + 1} lacks the field {e.args[0]!r}") from None
            except (TypeError, ValueError) as e:
                if isinstance(e, SchemaError):
                    raise
                raise SchemaError(f"sub-label #{i + 1}: {e}") from None
        grades = data.get("grades", [str(g) for g in GRADES])
        descriptions = data.get("grade_descriptions", DEFAULT_GRADE_DESCRIPTIONS)  # older cards: the defaults
        if not isinstance(descriptions, (list, tuple)) or not all(isinstance(d, str) for d in descriptions):
            raise SchemaError("'grade_descriptions' must be a list of 8 texts, one per grade 0-7")
        return cls(
            sublabels=tuple(subs),
            name=str(data.get("name", "custom")),
            version=version,
            grade_names=tuple(str(g) for g in grades),
            grade_descriptions=tuple(descriptions),
        )

    def save(self, path: str | Path) -> None:
        from engine.fsutil import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SchemaError(f"{p}: no such schema file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SchemaError(f"{p}: not valid JSON ({e})") from None
        return cls.from_dict(data)


def parse_sublabels(text: str | None) -> dict[str, int | None]:
    """'central_involvement=1,opacity_density=?' -> {'central_involvement': 1, 'opacity_density': None}.

    The NAME=VALUE list of the command lines (CLI and app); a blank or '?' value means
    unknown. Names and ranges are checked later, against the schema of the models in use.
    """
    out: dict[str, int | None] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise SchemaError(f"sub-label {item.strip()!r} must be written NAME=VALUE")
        if value in ("", "?"):
            out[name] = None
            continue
        try:
            out[name] = int(value)
        except ValueError:
            raise SchemaError(f"sub-label {name!r}: {value!r} is not a whole number") from None
    return out


def _json_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, not {value!r}")
    return value


DEFAULT_SCHEMA = Schema(
    sublabels=(
        SubLabel(
            "central_involvement", "ordinal", 0, 2,
            "Opacity in the central 3 mm zone: none, touches it, covers it.",
            ("none", "touches", "covers"),
        ),
        SubLabel(
            "pupil_area_obscured", "ordinal", 0, 5,
            "Share of the pupil area obscured by cortical opacity (LOCS cut points).",
            ("0%", "<10%", "10-25%", "25-50%", "50-90%", ">90%"),
        ),
        SubLabel(
            "sectors_involved", "count", 0, 8,
            "Number of the 8 peripheral sectors (Wisconsin grid) that hold opacity.",
        ),
        SubLabel(
            "radial_extent", "ordinal", 0, 3,
            "How far the longest spoke reaches from the lens edge toward the centre.",
            ("none", "outer third", "middle third", "reaches centre"),
        ),
        SubLabel(
            "opacity_density", "ordinal", 0, 3,
            "Darkness of the spokes against the red reflex.",
            ("none", "faint", "moderate", "dense"),
        ),
        SubLabel(
            "morphology", "ordinal", 0, 3,
            "Shape of the opacity: isolated spokes, wedges, or coalescent.",
            ("none", "isolated spokes", "wedges", "coalescent"),
        ),
    ),
    name="cortical-locs-wisconsin",
)
