"""MkDocs hooks: the parts of the site that are generated from the code and the records, so they cannot drift.

A page asks for a generated part with a marker on a line of its own, `<!-- generated: NAME -->`:

    cli            every command's --help (argparse), train's and sweep's own text
    configuration  the configuration schema, from the dataclasses of trainer/schema.py
    results-json   the results.json schema, from the dataclasses of trainer/record/
    records        the records and frontier tables (what `tinyhub reproduce --table-only` writes to RESULTS.md)
    speed          the speed table (what `python results/speed/table.py` prints)
    time-to-target the time-to-target tables (what `python results/speed/table.py --time-to-target` prints)
    exports        the exports table (what `python results/exports/table.py` prints)
    experiments    the experiments of results/experiments/, each with its title and question

The experiment folders themselves (results/experiments/<name>/: README.md, scripts, raw outputs) are added to the
site under experiments/, so the Results page links to them and their READMEs link to their own files.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import importlib.util
import inspect
import os
import re
import shutil
import typing
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "results" / "experiments"
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)


# ---- the configuration and results.json schemas, from their dataclasses ----
def _field_notes(cls: type) -> dict[str, str]:
    """field name -> the comment beside it (or the comment lines just above it) in the class's source."""
    notes, above = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        m = re.match(r"(\w+)\s*:\s*[^=]+?(?:=.*?)?(?:\s+#\s*(.*))?$", stripped)
        if m and not stripped.startswith(("def ", "@", "return", '"""')):
            notes[m.group(1)] = " ".join([*above, m.group(2) or ""]).strip()
        above = []
    return notes


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
        if value == "???":  # omegaconf's MISSING: the recipe must set it
            return "required"
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "(section)"
    return "`null`" if value is None else f"`{value!r}`".replace("'", '"').replace("|", "\\|")


def _nested(cls: type, f: dataclasses.Field) -> type | None:
    """The dataclass a field holds (directly, in a list, or optionally), if any."""
    hints = typing.get_type_hints(cls)
    tp = hints.get(f.name)
    for arg in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(arg):
            return arg
        for inner in typing.get_args(arg):
            if dataclasses.is_dataclass(inner):
                return inner
    return None


def _schema_tables(cls: type, prefix: str = "", level: int = 2, *, defaults: bool = True,
                   seen: set | None = None) -> list[str]:
    from tinyhub.trainer.schema import described_choices

    seen = set() if seen is None else seen
    notes = _field_notes(cls)  # a record's fields are documented by their comments; a setting's by its declaration
    out, children = [], []
    title = f"`{prefix.rstrip('.')}`" if prefix else f"`{cls.__name__}`"
    out.append(f"{'#' * level} {title}\n")
    doc = inspect.getdoc(cls)
    if doc and not doc.startswith(cls.__name__ + "("):
        out.append(doc.split("\n\n")[0].replace("\n", " ") + "\n")
    head = "| key | type | default | meaning |\n|---|---|---|---|" if defaults else \
        "| field | type | meaning |\n|---|---|---|"
    rows = []
    for f in dataclasses.fields(cls):
        child = _nested(cls, f)
        kind = _type_text(f.type).replace("|", "or")
        facts = f.metadata.get("tinyhub")
        # escaped: placeholders such as <root> are text, not tags
        note = html.escape(facts.help if facts else notes.get(f.name, ""), quote=False).replace("|", "\\|")
        if child is not None and child not in seen:
            seen.add(child)
            children.append((f"{prefix}{f.name}.", child))
            note = (note.rstrip(".") + ". " if note else "") + f"See [`{prefix}{f.name}`](#{_anchor(prefix + f.name)})."
        if facts and facts.range_text:
            span = facts.range_text
            pair = " (each of the two)" if "List" in kind and f.name != "seeds" else ""
            note = (note.rstrip(".") + ". " if note else "") + f"Allowed{pair}:{span}."
        if facts and facts.read_by is not None:
            readers = " or ".join(facts.read_by)
            note = (note.rstrip(".") + ". " if note else "") + f"Read only with `{prefix}name` = {readers}."
        if facts and facts.choices is not None:
            note = (note.rstrip(".") + ". " if note else "") + f"One of: {', '.join(described_choices(facts))}."
        cells = [f"`{prefix}{f.name}`", f"`{kind}`", *([_default(f)] if defaults else []), note]
        rows.append("| " + " | ".join(cells) + " |")
    out.append(head + "\n" + "\n".join(rows) + "\n")
    for child_prefix, child in children:
        out += _schema_tables(child, child_prefix, min(level + 1, 4), defaults=defaults, seen=seen)
    return out


def _type_text(kind) -> str:
    """A field's type as its annotation is written ("Optional[int]", "str")."""
    if isinstance(kind, str):
        return kind
    return kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")


def _anchor(key: str) -> str:
    """The anchor MkDocs' toc gives a heading `key` (in backticks)."""
    return re.sub(r"[^\w-]", "", key.replace(".", "").replace(" ", "-")).lower()


def configuration() -> str:
    from tinyhub.trainer.schema import HpoConfig, TrainConfig

    return "\n".join(_schema_tables(TrainConfig, "", 2) + _schema_tables(HpoConfig, "hpo.", 2))


def results_json() -> str:
    from tinyhub.trainer.record import RunRecord

    return "\n".join(_schema_tables(RunRecord, "", 2, defaults=False))


# ---- the command line, from the argparse parsers ----
def cli() -> str:
    from tinyhub.cli import COMMANDS

    os.environ["COLUMNS"] = "110"  # argparse wraps to the terminal; the page should not depend on it
    parts = []
    for name, (module_name, summary, extras) in COMMANDS.items():
        module = importlib.import_module(f"tinyhub.commands.{module_name}")
        needs = f' (needs `pip install "tinyhub[{",".join(extras)}]"`)' if extras else ""
        parts.append(f"## `tinyhub {name}`\n\n{summary[0].upper() + summary[1:]}{needs}.\n")
        if hasattr(module, "parser"):
            text = module.parser(f"tinyhub {name}").format_help()
        else:  # train and sweep take Hydra overrides: every configuration key is an option
            text = (module.__doc__ or "").strip()
            parts.append("Every key of the [configuration](configuration.md) is an option, given as `key=value`.\n")
        parts.append(f"```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


# ---- tables from the records and the speed outputs ----
def records() -> str:
    from tinyhub.commands.reproduce import tables_text

    return tables_text(REPO / "results")


def _speed_module():
    spec = importlib.util.spec_from_file_location("speed_table", REPO / "results" / "speed" / "table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speed() -> str:
    return _speed_module().full_table()


def time_to_target() -> str:
    return _speed_module().time_to_target_table()


def exports() -> str:
    spec = importlib.util.spec_from_file_location("exports_table", REPO / "results" / "exports" / "table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.exports_table()


def experiment_summaries() -> list[tuple[str, str, str]]:
    """(folder name, title, question) of every experiment, from its README."""
    out = []
    for readme in sorted(EXPERIMENTS.glob("*/README.md")):
        text = readme.read_text()
        title = re.search(r"^# (.+)$", text, re.M)
        section = re.search(r"^## Question\s*\n+(.+?)(?=^## |\Z)", text, re.M | re.S)
        section = " ".join(section.group(1).split()) if section else ""
        section = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", section)  # its links are relative to its own folder
        # the question itself: its first sentence that asks one, else its first sentence
        sentences = re.split(r"(?<=[.?!])\s+(?=[A-Z`\"(])", section)
        question = next((x for x in sentences if x.endswith("?")), sentences[0])
        out.append((readme.parent.name, title.group(1).strip() if title else readme.parent.name, question))
    return out


def experiments() -> str:
    rows = [f"| [{title}](experiments/{name}/README.md) | {question} |"
            for name, title, question in experiment_summaries()]
    return "| experiment | question |\n|---|---|\n" + "\n".join(rows) + "\n"


def record_schemas() -> str:
    """Each record file's JSON Schema, generated from its type (trainer/record/__init__.py RECORD_FILES)."""
    import json

    from tinyhub.trainer.record import RECORD_FILES, json_schema

    parts = []
    for file, kind in RECORD_FILES.items():
        name = getattr(kind, "__name__", None) or f"list of {kind.__args__[0].__name__}"
        parts.append(f"### `{file}` ({name})\n\n```json\n{json.dumps(json_schema(kind), indent=1)}\n```\n")
    return "\n".join(parts)


GENERATORS = {"cli": cli, "configuration": configuration, "results-json": results_json, "records": records,
              "record-schemas": record_schemas,
              "speed": speed, "time-to-target": time_to_target, "exports": exports, "experiments": experiments}


# ---- MkDocs events ----
#: setup.cfg's package_dir: the folders that install inside the tinyhub namespace
NAMESPACE_FOLDERS = {"modeling": "modeling", "trainer": "trainer", "cards": "cards"}


def lay_out_api_sources() -> None:
    """Lay tinyhub out as it installs, for mkdocstrings to read statically: a copy of tinyhub/'s sources in
    build/api-src/tinyhub with modeling/, trainer/ and cards/ inside it (setup.cfg maps them into the namespace).
    A copy, not links: griffe resolves links and would read the folders where they really are. Done when MkDocs
    loads this file, before mkdocstrings looks at its `paths` (it drops a folder that does not exist yet)."""
    package = REPO / "build" / "api-src" / "tinyhub"
    shutil.rmtree(package, ignore_errors=True)
    sources = {package: REPO / "tinyhub"}
    sources.update({package / name: REPO / folder for name, folder in NAMESPACE_FOLDERS.items()})
    for dest, src in sources.items():
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)


lay_out_api_sources()


def on_files(files, config):
    """Every file of results/experiments/ joins the site under experiments/."""
    for path in sorted(EXPERIMENTS.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files.append(File(f"experiments/{path.relative_to(EXPERIMENTS).as_posix()}", str(EXPERIMENTS.parent),
                              config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    def replace(m: re.Match) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_uri}: no generator for the marker {m.group(0)!r}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)
