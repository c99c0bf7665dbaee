"""What every record shares: its kind and schema version, the dataset's identity, and the one error a record
that cannot be read honestly raises."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tinyhub.errors import TinyhubError



#: What every results.json tinyhub writes says it is, so that a file from another tool is never mistaken for one.
RECORD_KIND = "tinyhub-run"
#: Bump on any incompatible change and add a migration below; the docs' results.json reference is generated
#: from these classes.
#: 3: `kind`, typed throughout (teachers, data); 2: data.identity and target_dataset; 1: before datasets had names.
RESULTS_SCHEMA_VERSION = 3
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class DatasetIdentity:
    """What a run was trained on, as results.json records it and the card states it.

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

    @property
    def key(self) -> str | None:
        """The name recipes use for this dataset (`recipe.target_dataset`): "mnist" for MNIST, else the Hub id or
        the name."""
        return self.canonical or self.hub_id or self.name

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetIdentity":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RunRecordError(TinyhubError, ValueError):
    """A results.json that is not a finished tinyhub run this version can read."""


def _fields(cls, d: dict, where: str, *, extra: str | None = None) -> dict:
    """The keyword arguments of dataclass `cls` from `d`: required keys must be there, unknown keys are refused
    (or kept under `extra`)."""
    names = {f.name for f in dataclasses.fields(cls)} - ({extra} if extra else set())
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(d))
    if missing:
        raise RunRecordError(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(set(d) - names)
    if unknown and not extra:
        raise RunRecordError(f"{where} has fields this tinyhub does not know: {', '.join(unknown)}")
    out = {k: v for k, v in d.items() if k in names}
    if extra:
        out[extra] = {k: d[k] for k in unknown}
    return out

def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
