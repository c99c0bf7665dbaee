"""What every record shares: its kind and schema version, the dataset's identity, and the one error a record
that cannot be read honestly raises."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from tinyhub.errors import TinyhubError


#: What every results.json tinyhub writes says it is, so that a file from another tool is never mistaken for one.
RECORD_KIND = "tinyhub-run"
#: Bump on any incompatible change and add a migration below; the docs' results.json reference is generated
#: from these classes.
#: 3: `kind`, typed throughout (teachers, data); 2: data.identity and target_dataset; 1: before datasets had names.
RESULTS_SCHEMA_VERSION = 3
RESULTS_FILE = "results.json"


class RunRecordError(TinyhubError, ValueError):
    """A results.json that is not a finished tinyhub run this version can read."""


class Record:
    """A record, read and written by pydantic, never by hand.

    Records are written and read by pydantic (v2, already a dependency of the stack through Gradio and FastAPI, and
    the library whose TypeAdapter also generates their JSON Schemas): it validates plain dataclasses as they are,
    so the records stay dataclasses that every reader uses by attribute. `from_dict` checks a dict against the
    type (each field's type; a missing or unknown field is a RunRecordError naming it), `as_dict` dumps it as it
    is written to disk. A record whose `details` field keeps the facts it does not declare (what a data source or
    a machine adds) reads them from, and writes them to, its own top level."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    @classmethod
    def from_dict(cls, d, where: str | None = None):
        try:
            return _adapter(cls).validate_python(gather_details(cls)(d))
        except ValidationError as e:
            raise RunRecordError(_problem(e, where or cls.__name__)) from e

    def as_dict(self) -> dict:
        return _adapter(type(self)).dump_python(self, by_alias=True)


@lru_cache(maxsize=None)
def _adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


#: A field left out of the written record while it is None (an epoch that was not evaluated, ...).
OMIT_NONE = Field(exclude_if=lambda value: value is None)


def gather_details(cls):
    """Validator: a dict's keys that `cls` does not declare, kept in its `details` (when it has that field)."""
    names = {f.name for f in dataclasses.fields(cls)}

    def gather(d):
        if "details" not in names:
            return d
        d = empty_if_none(d)
        if not isinstance(d, dict):
            return d
        return {**{k: v for k, v in d.items() if k in names and k != "details"},
                "details": {**d.get("details", {}), **{k: v for k, v in d.items() if k not in names}}}

    return gather


def spread_details(value, handler) -> dict:
    """Serializer: a record's `details` written at its own top level, before its declared fields."""
    d = handler(value)
    return {**d.pop("details", {}), **d}


def empty_if_none(value):
    """Validator: a section an older record left null, read as empty."""
    return {} if value is None else value


def _problem(error: ValidationError, where: str) -> str:
    """A pydantic error as the one line a reader needs: which field is missing, unknown or malformed, where."""
    unknown: dict[str, list[str]] = {}
    for e in error.errors():
        *path, leaf = e["loc"] or ("",)
        at = f"{where}: {'.'.join(map(str, path))}" if path else where
        if e["type"] == "missing":
            return f"{at} lacks {leaf}"
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            unknown.setdefault(at, []).append(str(leaf))
    if unknown:
        at, names = next(iter(unknown.items()))
        return f"{at} has fields this tinyhub does not know: {', '.join(sorted(names))}"
    e = error.errors()[0]
    return f"{where} is malformed ({'.'.join(map(str, e['loc']))}: {e['msg']})"


@dataclass(frozen=True)
class DatasetIdentity(Record):
    """What a run was trained on, as results.json records it and the card states it (a field a newer tinyhub
    adds is ignored by an older one).

    `name` is None when nothing identifies the data (IDX files with data.verify=false and no data.name, a saved
    folder without metadata): the card then asks for a name at push time instead of guessing.
    """

    name: str | None  # the dataset's name as people know it
    source: str  # "idx" (local IDX files) | "hub" (a Hub dataset id) | "folder" (DatasetDict.save_to_disk)
    identified_by: str  # how `name` was decided, in words
    fingerprint: str  # content_fingerprint of the train and test splits
    hub_id: str | None = None  # a Hub dataset id, when the data is one
    revision: str | None = None
    canonical: str | None = None  # "mnist" when the content is canonical MNIST
    description: str | None = None  # from the dataset's own DatasetInfo, when it has one
    citation: str | None = None
    license: str | None = None
    homepage: str | None = None

    __pydantic_config__ = ConfigDict(extra="ignore")

    @property
    def key(self) -> str | None:
        """The name recipes use for this dataset (`recipe.target_dataset`): "mnist" for MNIST, else the Hub id or
        the name."""
        return self.canonical or self.hub_id or self.name



def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
