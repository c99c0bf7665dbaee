"""Publish a run directory to the Hub: one commit with weights, config, card, results and images; then verify.

The token comes only from the environment (HF_TOKEN) or the huggingface_hub login; it is passed to the client
and never printed, logged or written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
)

from tinyhub.errors import TinyhubError, UsageError
from tinyhub.utils.files import (OUTPUT_MARKER, check_output_folder, claim_output_folder, output_folder, output_kind_above,
                           sha256_file)
from tinyhub.utils.hub_http import repo_id_problem, use_hub_timeouts
from tinyhub.utils.tables import markdown_table
from tinyhub.trainer.record import EXPORT_EXAMPLES_FILE, EXPORTS_FILE, SeedStats
from tinyhub.trainer.run_info import EXAMPLES_FILE

from .card import (CardError, build_card, card_dataset, load_exports, load_publishable_run, merge_with_existing,
                   validate_card)
from .space import space_files

#: What a push uploads for a run (examples.safetensors, which the card's snippet reads, only when the run has it;
#: runs trained before tinyhub wrote it do not).
UPLOADED = ("config.json", "model.safetensors", "README.md", "results.json", EXAMPLES_FILE,
            "images/training_curves.png", "images/confusion_matrix.png")
RETRY_STATUS = {429, 500, 502, 503, 504}
logger = logging.getLogger(__name__)


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection failures as the installed HTTP stack spells them (httpx or requests, depending on versions)."""
    import importlib
    import socket

    # Not OSError as a whole: a missing local file or an unwritable folder is not the network.
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests", "ConnectionError"), ("requests", "Timeout")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


NETWORK_ERRORS = _network_errors()


class PushError(TinyhubError, RuntimeError):
    """The push could not be done; nothing (or nothing new) was published."""


class PushInterrupted(PushError):
    """The push was interrupted (Ctrl+C, SIGTERM); the message says what the repository holds now."""

    exit_code = 130


class RepoIdError(UsageError, PushError):
    """The repo id given is not NAMESPACE/NAME or not valid on the Hub."""


@dataclass
class PushResult:
    repo_id: str
    url: str
    commit: str
    revision: str
    changed: bool
    tag: str | None
    weights_sha256: str
    pr_url: str | None = None
    space_url: str | None = None


def _git_blob_sha1(path: Path) -> str:
    return _git_blob_sha1_of(path.read_bytes())


def _git_blob_sha1_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_repo_id(repo_id: str) -> None:
    problem = repo_id_problem(repo_id)
    if problem:
        raise RepoIdError(problem)


def require_token() -> str:
    token = get_token()
    if not token:
        raise PushError("No Hugging Face token found. Set HF_TOKEN in the environment or run `hf auth login`; "
                        "tinyhub never asks for it on the command line.")
    return token


class UnsafeRunFileError(PushError):
    """A file the push would upload is not a plain file of the run: a link, a hard link, a device, or outside it."""


def _run_files(run_dir: Path, include_logs: bool) -> dict[str, Path]:
    """path in the repo -> the run's file it is copied from, for every file of the run that a push uploads."""
    files = {"config.json": run_dir / "model" / "config.json",
             "model.safetensors": run_dir / "model" / "model.safetensors",
             "results.json": run_dir / "results.json"}
    if (run_dir / EXAMPLES_FILE).exists() or (run_dir / EXAMPLES_FILE).is_symlink():  # the card's snippet reads it
        files[EXAMPLES_FILE] = run_dir / EXAMPLES_FILE
    for image in ("training_curves.png", "confusion_matrix.png"):
        files[f"images/{image}"] = run_dir / "images" / image
    exports = load_exports(run_dir)  # made from these weights, its files unchanged; failed formats stay behind
    if exports is not None:
        files[EXPORTS_FILE] = run_dir / EXPORTS_FILE
        files[EXPORT_EXAMPLES_FILE] = run_dir / EXPORT_EXAMPLES_FILE
        files.update({f.file: run_dir / f.file for f in exports.passed})
    logs = run_dir / "logs"
    if include_logs and (logs.is_dir() or logs.is_symlink()):
        files.update({p.relative_to(run_dir).as_posix(): p for p in sorted(logs.rglob("*"))
                      if not p.is_dir() or p.is_symlink()})  # a linked logs/ folder: its files' real paths tell
    return files


def _open_run_file(run_dir: Path, path: Path) -> int:
    """A descriptor of `path`, opened only if it is a plain file of the run: its real path is inside `run_dir`
    with no link on the way, it has no other name (a hard link), and it is a regular file. Else UnsafeRunFileError,
    which names the file; nothing of it is read."""
    rel = path.relative_to(run_dir)
    if Path(os.path.realpath(path)) != Path(os.path.realpath(run_dir)) / rel:
        raise UnsafeRunFileError(f"{path} is a link, or lies behind one; tinyhub uploads only the run's own files. "
                                 "Replace it with the real file and push again.")
    try:
        # O_NONBLOCK: a FIFO in the run must not hang the push waiting for a writer; it is refused below
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise PushError(f"{path} is missing: the run is incomplete, so it cannot be published.") from None
    info = os.fstat(fd)
    problem = ("is not a regular file" if not stat.S_ISREG(info.st_mode) else
               f"has {info.st_nlink} names (a hard link); another name may be a private file" if info.st_nlink > 1
               else None)
    if problem:
        os.close(fd)
        raise UnsafeRunFileError(f"{path} {problem}; tinyhub uploads only the run's own files. Replace it with a "
                                 "plain copy and push again.")
    return fd


def check_run_files(run_dir: str | Path, include_logs: bool = False) -> None:
    """Every file a push of `run_dir` would upload is a plain file of the run (see _open_run_file)."""
    run_dir = Path(run_dir)
    for path in _run_files(run_dir, include_logs).values():
        os.close(_open_run_file(run_dir, path))


def stage_folder(run_dir: str | Path, out_dir: str | Path, *, repo_id: str, revision: str,
                 seed_runs=(), existing_readme: str | None = None, include_logs: bool = False,
                 project_url: str | None = None, dataset_name: str | None = None,
                 dataset_id: str | None = None, space_id: str | None = None, measured: bool = False) -> Path:
    """Write exactly what would be uploaded into `out_dir`: a new or empty folder, or one tinyhub staged before
    (never a folder of the user's: OutputFolderError). Only plain files of the run are copied, byte by byte. The
    weights are measured again on the test split first, unless the caller just did (`measured`)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_output_folder(out_dir)
    check_run_files(run_dir, include_logs)  # all of them before any is read or anything written
    results = load_publishable_run(run_dir)
    if not measured:
        _measure_again(run_dir, results)
    naming = {"dataset_name": dataset_name, "dataset_id": dataset_id}
    card = build_card(run_dir, repo_id=repo_id, revision=revision, seed_runs=list(seed_runs),
                      project_url=project_url, space_id=space_id, **naming)
    readme = merge_with_existing(card.content, existing_readme)
    validate_card(readme, dataset=card_dataset(results, **naming))  # hand-kept metadata must not contradict it
    with output_folder(out_dir, "upload") as tmp:
        for rel, path in _run_files(run_dir, include_logs).items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with os.fdopen(_open_run_file(run_dir, path), "rb") as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        (tmp / "README.md").write_text(readme)
    return out_dir


def _measure_again(run_dir: Path, results) -> None:
    """The weights about to be published classify as many test images correctly as the card will say (a tiny
    model is measured in a second or two); a record older than the weights' hash is given it here."""
    from tinyhub.trainer.evaluation import recount_test

    try:
        correct = recount_test(run_dir)
    except TinyhubError as e:
        raise PushError(f"the weights to publish could not be measured again on the run's test split ({e}); "
                        "nothing was published.") from e
    if correct != results.final.test_correct:
        raise CardError(f"{run_dir}/model classifies {correct:,} of the {results.final.test_total:,} test images "
                        f"correctly now, but results.json records {results.final.test_correct:,}: these are not the "
                        "weights it measured. Restore the original model files, or train the model again.")
    if results.weights_sha256 is None:  # measured just now: the hash a newer run records itself
        results.weights_sha256 = sha256_file(run_dir / "model" / "model.safetensors")
        results.save(run_dir)


def staged_files(folder: Path) -> list[Path]:
    """The files of a staged folder that go to the Hub (tinyhub's marker stays behind)."""
    return [p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() != OUTPUT_MARKER]


def _with_retries(fn, attempts: int = 4):
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status not in RETRY_STATUS or attempt == attempts:
                raise
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
    raise AssertionError("unreachable")


def _branch_head(api: HfApi, repo_id: str, branch: str, repo_type: str = "model") -> str | None:
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    for b in refs.branches:
        if b.name == branch:
            return b.target_commit
    return None


def _remote_matches(api: HfApi, repo_id: str, commit: str, folder: Path) -> bool:
    remote = {f.path: f for f in api.list_repo_tree(repo_id, revision=commit, recursive=True)
              if hasattr(f, "blob_id")}
    local = staged_files(folder)
    for p in local:
        rel = p.relative_to(folder).as_posix()
        r = remote.get(rel)
        if r is None:
            return False
        if r.lfs is not None:
            if r.lfs.sha256 != sha256_file(p):
                return False
        elif r.blob_id != _git_blob_sha1(p):
            return False
    return True


def _existing_readme(repo_id: str, revision: str | None) -> str | None:
    if revision is None:
        return None
    try:
        return Path(hf_hub_download(repo_id, "README.md", revision=revision)).read_text()
    except EntryNotFoundError:
        return None


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = False, branch: str | None = None,
             tag: str | None = None, create_pr: bool = False, commit_message: str | None = None,
             seed_runs=(), include_logs: bool = False, project_url: str | None = None,
             dataset_name: str | None = None, dataset_id: str | None = None, space_id: str | None = None,
             move_tag: bool = False, log=logger.info) -> PushResult:
    """Create the repo if needed and publish `run_dir` in ONE commit, then verify what the Hub serves. With
    `space_id`, the card links that Space, and the Space (a Gradio demo of the model at the pushed commit) is
    created or updated after the model. A `tag` that already names another commit is refused before anything is
    committed, unless `move_tag`: a card pinned to a tag must find its own weights there."""
    check_repo_id(repo_id)
    if space_id is not None:
        check_repo_id(space_id)
        gradio_version = _gradio_version()
    run_dir = Path(run_dir)
    check_run_files(run_dir, include_logs)  # a link or hard link among the files to upload stops here, unread
    results = load_publishable_run(run_dir)  # so does a run without a final evaluation, before any network call
    card_dataset(results, dataset_name=dataset_name, dataset_id=dataset_id)  # and an unnamed dataset
    _measure_again(run_dir, results)  # and weights that are not the ones measured
    token = require_token()
    use_hub_timeouts()
    api = HfApi(token=token)
    branch = branch or "main"

    state = {"stage": "before", "commit": None}  # what an interruption would leave on the Hub
    try:
        pushed = _push_to(api, run_dir, results, repo_id, private=private, branch=branch, tag=tag,
                          create_pr=create_pr, commit_message=commit_message, seed_runs=seed_runs,
                          include_logs=include_logs, project_url=project_url, dataset_name=dataset_name,
                          dataset_id=dataset_id, space_id=space_id, move_tag=move_tag, log=log, state=state)
        if space_id is not None:
            stats = SeedStats.of_records([results, *(load_publishable_run(r) for r in seed_runs)])
            files = space_files(results, stats, repo_id=repo_id, revision=pushed.commit,
                                gradio_version=gradio_version)
            try:
                pushed.space_url = _push_space(api, space_id, files, private=private, log=log)
            except (HfHubHTTPError, *NETWORK_ERRORS) as e:
                raise PushError(f"published {repo_id} at commit {pushed.commit}, but its Space {space_id} could not "
                                f"be updated ({type(e).__name__}: {e}). Run the same command again: it makes no "
                                "second model commit and finishes the Space.") from e
        return pushed
    except KeyboardInterrupt as e:
        where = f"{repo_id}@{branch or 'main'}"
        raise PushInterrupted({
            "before": f"interrupted before anything was committed to {where} (at most an empty repository was "
                      "created). Run the command again.",
            "committing": f"interrupted while committing to {where}: the commit may or may not have landed. Run the "
                          "same command again: it finishes the push, or finds the files already there.",
            "after": f"interrupted after publishing {where} at commit {state['commit']}"
                     + (f"; tag {tag!r} may be missing" if tag else "") + ". Run the same command again to finish "
                     "(it makes no second commit).",
        }[state["stage"]]) from e


def _push_to(api: HfApi, run_dir: Path, results, repo_id: str, *, private, branch, tag, create_pr,
             commit_message, seed_runs, include_logs, project_url, dataset_name, dataset_id, space_id, move_tag,
             log, state: dict) -> PushResult:
    revision_for_card = tag or branch
    repo_url = _with_retries(lambda: api.create_repo(repo_id, private=private, exist_ok=True))
    head = _branch_head(api, repo_id, branch)
    if head is None and branch != "main":
        main_head = _branch_head(api, repo_id, "main")
        if main_head is not None:
            api.create_branch(repo_id, branch=branch, revision=main_head)
            head = main_head
    with tempfile.TemporaryDirectory(prefix="tinyhub-push-") as tmp:
        folder = stage_folder(run_dir, Path(tmp) / "upload", repo_id=repo_id, revision=revision_for_card,
                              seed_runs=seed_runs, existing_readme=_existing_readme(repo_id, head),
                              project_url=project_url, include_logs=include_logs,
                              dataset_name=dataset_name, dataset_id=dataset_id, space_id=space_id, measured=True)
        weights_sha = sha256_file(folder / "model.safetensors")
        tagged = _tag_target(api, repo_id, tag) if tag and not create_pr else None
        if tagged is not None and not move_tag and not _remote_matches(api, repo_id, tagged, folder):
            raise PushError(f"the tag {tag!r} of {repo_id} already names commit {tagged}, which holds other files "
                            f"than this run's; the card would send readers to {tag!r} for other weights. Choose "
                            "another --tag, or pass --move-tag to move it to this push. Nothing was committed.")
        changed = not (head is not None and _remote_matches(api, repo_id, head, folder))
        commit, pr_url = head, None
        if changed:
            ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                   for p in staged_files(folder)]
            if head is not None:  # files tinyhub published before but no longer produces
                ours = {op.path_in_repo for op in ops}
                stale = [f.path for f in api.list_repo_tree(repo_id, revision=head, recursive=True)
                         if hasattr(f, "blob_id") and f.path not in ours
                         and (f.path.startswith(("images/", "logs/", "onnx/")) or f.path == EXPORTS_FILE)]
                ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
            message = commit_message or (f"tinyhub: {results.model} "
                                         f"{results.final.test_accuracy:.2f}% from {run_dir.name}")

            def do_commit():
                return api.create_commit(repo_id, ops, commit_message=message, revision=branch,
                                         parent_commit=head, create_pr=create_pr)

            state["stage"] = "committing"
            try:
                info = _with_retries(do_commit)
            except HfHubHTTPError as e:
                status = e.response.status_code if e.response is not None else None
                if status in (409, 412):
                    # The branch moved under us: maybe our own earlier attempt landed before a 5xx reply.
                    now = _branch_head(api, repo_id, branch)
                    if now is not None and _remote_matches(api, repo_id, now, folder):
                        info = None
                        commit = now
                    else:
                        raise PushError(f"{repo_id}@{branch} changed while pushing (someone else committed); "
                                        "nothing was overwritten. Re-run the push to build on their change.") from e
                else:
                    raise
            else:
                commit = info.oid
                pr_url = info.pr_url
        else:
            log(f"{repo_id}@{branch} already holds exactly this run (commit {head}); no new commit.")
        state.update(stage="after", commit=commit)
        if tag and not create_pr:
            try:
                existing = _tag_target(api, repo_id, tag)
                if existing is not None and existing != commit:  # --move-tag (else refused above), or same files
                    if not _remote_matches(api, repo_id, existing, folder):
                        _with_retries(lambda: api.delete_tag(repo_id, tag=tag))
                        log(f"tag {tag!r} moved from {existing} to {commit} (--move-tag).")
                        existing = None
                if existing is None:
                    _with_retries(lambda: api.create_tag(repo_id, tag=tag, revision=commit))
            except (HfHubHTTPError, *NETWORK_ERRORS) as e:  # the card names the tag: say it is not there yet
                raise PushError(f"published {repo_id} at commit {commit}, but the tag {tag!r} that its card "
                                f"names was not created ({type(e).__name__}: {e}). Run the same command again "
                                "to finish: it makes no second commit and adds the tag.") from e
        try:
            _verify(repo_id, commit, weights_sha)
            if tag and not create_pr:  # the revision the card names serves exactly these weights
                _verify(repo_id, tag, weights_sha)
        except Exception as e:  # the commit is on the Hub whatever went wrong here: say so, never "nothing"
            raise PushError(f"published {repo_id} at commit {commit}, but what the Hub serves could not be "
                            f"verified ({type(e).__name__}: {e}). Check it with `tinyhub evaluate "
                            f"{repo_id}@{commit}`.") from e
    url = f"{str(repo_url).rstrip('/')}"
    log(f"Published {repo_id} at commit {commit}: {url}" + (f" (pull request {pr_url})" if pr_url else ""))
    return PushResult(repo_id, url, commit, revision_for_card, changed, tag, weights_sha, pr_url)


def _gradio_version() -> str:
    """The Gradio this tinyhub's demo runs on here: the version a Space is built with (its README's sdk_version)."""
    from importlib import metadata

    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError:
        raise PushError('--space publishes the Gradio demo, built for the Gradio installed here, and there is none: '
                        'pip install "tinyhub[demo]" (try it first with `tinyhub demo RUN`).') from None


def _push_space(api: HfApi, space_id: str, files: dict[str, str], *, private: bool, log) -> str:
    """Create the Space if needed and commit its files when they differ from what it holds: its URL."""
    url = _with_retries(lambda: api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private,
                                                exist_ok=True))
    head = _branch_head(api, space_id, "main", repo_type="space")
    held = {f.path: f.blob_id for f in api.list_repo_tree(space_id, repo_type="space", revision=head, recursive=True)
            if hasattr(f, "blob_id")} if head else {}
    changed = {p: t for p, t in files.items() if held.get(p) != _git_blob_sha1_of(t.encode())}
    if not changed:
        log(f"the Space {space_id} already serves this model; no new commit.")
        return str(url)
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=t.encode()) for p, t in changed.items()]
    info = _with_retries(lambda: api.create_commit(space_id, ops, repo_type="space", parent_commit=head,
                                                   commit_message="tinyhub: demo of the model"))
    log(f"Published the Space {space_id} at commit {info.oid}: {url}")
    return str(url)


def _tag_target(api: HfApi, repo_id: str, tag: str) -> str | None:
    """The commit `tag` names in `repo_id`, or None."""
    return next((t.target_commit for t in api.list_repo_refs(repo_id).tags if t.name == tag), None)


def _verify(repo_id: str, commit: str, weights_sha: str) -> None:
    """Download what the Hub serves at `commit`, check the bytes and load it strictly."""
    from tinyhub import modeling

    with tempfile.TemporaryDirectory(prefix="tinyhub-verify-") as cache:
        weights = Path(hf_hub_download(repo_id, "model.safetensors", revision=commit, cache_dir=cache))
        if sha256_file(weights) != weights_sha:
            raise PushError(f"verification failed: the weights served at {commit} differ from the run's.")
        modeling.from_pretrained(repo_id, revision=commit, cache_dir=cache)


# ---------------------------------------------------------------------------------------------------------
# The zoo: every run in a folder, one repo per model
# ---------------------------------------------------------------------------------------------------------
def find_runs(runs_dir: str | Path, log=logger.warning) -> dict[tuple[str, str, int], list[Path]]:
    """Finished runs grouped by (model, dataset, epochs): the seeds of one recipe, each group sorted by seed (the
    lowest seed's weights are published). Runs of the same architecture for different lengths (a speed recipe and
    an accuracy recipe) are different models of the zoo, never averaged as seeds. The dataset is the card's name
    for it, as a slug ("unidentified" when the run has none)."""
    groups: dict[tuple[str, str, int], list[tuple[int, Path]]] = {}
    skipped: set[Path] = set()
    for results_file in sorted(Path(runs_dir).rglob("results.json")):
        run = results_file.parent
        inside = output_kind_above(run, runs_dir)
        if inside:  # an upload folder's copy of results.json, a sweep's trials: not runs of the zoo
            if inside[0] not in skipped:
                skipped.add(inside[0])
                log(f"note: skipped {inside[0]}: {inside[1]}, not a run")
            continue
        try:
            results = load_publishable_run(run)
        except CardError:
            continue
        try:
            dataset = card_dataset(results).type.split("/")[-1]
        except CardError:
            dataset = "unidentified"  # staging its card then says how to name it
        groups.setdefault((results.model, dataset, len(results.epochs)), []).append((results.seed, run))
    return {key: [p for _, p in sorted(runs)] for key, runs in sorted(groups.items())}


def zoo_repo_id(namespace: str, model: str, dataset: str, epochs: int | None = None) -> str:
    """`NAMESPACE/tinyhub-MODEL-DATASET`, with `-Nep` when the zoo holds the model for several lengths."""
    name = f"{model}-{dataset}" + (f"-{epochs}ep" if epochs is not None else "")
    return f"{namespace}/tinyhub-{re.sub(r'[^A-Za-z0-9._-]', '-', name)}"


def _zoo(runs_dir: str | Path, namespace: str) -> list[tuple[str, str, list[Path]]]:
    """(model, repo id, its runs with the published seed first) for every model and dataset in `runs_dir`."""
    groups = find_runs(runs_dir)
    if not groups:
        raise PushError(f"{runs_dir} holds no finished runs (folders with results.json and model/).")
    lengths: dict[tuple[str, str], int] = {}
    for model, dataset, _ in groups:
        lengths[(model, dataset)] = lengths.get((model, dataset), 0) + 1
    return [(model, zoo_repo_id(namespace, model, dataset, epochs if lengths[(model, dataset)] > 1 else None), runs)
            for (model, dataset, epochs), runs in groups.items()]


def stage_all(runs_dir: str | Path, namespace: str, out_dir: str | Path, *, tag: str | None = None,
              project_url: str | None = None) -> list[Path]:
    """`push_all` as a dry run: each model's upload folder under `out_dir/<repo name>`; nothing is sent. `out_dir`
    is new, empty or tinyhub's (marked as such), like every folder tinyhub writes whole."""
    out_dir = claim_output_folder(out_dir, "uploads")
    staged = []
    for _, repo_id, runs in _zoo(runs_dir, namespace):
        staged.append(stage_folder(runs[0], Path(out_dir) / repo_id.split("/")[1], repo_id=repo_id,
                                   revision=tag or "main", seed_runs=runs[1:], project_url=project_url))
    return staged


#: The collection `tinyhub push --all` keeps of the models it publishes, one per namespace.
COLLECTION_TITLE = "tinyhub zoo"


def push_all(runs_dir: str | Path, namespace: str, *, private: bool = False, tag: str | None = None,
             project_url: str | None = None, collection: str | None = COLLECTION_TITLE,
             log=logger.info) -> tuple[list[PushResult], str, str | None]:
    """Publish every model in `runs_dir` (one repo each, the lowest seed's weights, the others' mean on the card),
    then bring the collection titled `collection` (None: none) up to date: (results, the zoo table, its URL)."""
    pushed, rows, members = [], [], []
    for model, repo_id, runs in _zoo(runs_dir, namespace):
        res = push_run(runs[0], repo_id, private=private, tag=tag, seed_runs=runs[1:], project_url=project_url,
                       log=log)
        pushed.append(res)
        records = [load_publishable_run(r) for r in runs]
        stats = SeedStats.of_records(records)
        rows.append([model, f"{records[0].parameters:,}", stats.text(), stats.n, f"[{repo_id}]({res.url})"])
        members.append((records[0].parameters, repo_id, _collection_note(records[0], stats)))
    url = None
    if collection:
        api = HfApi(token=require_token())
        url = sync_collection(api, namespace, collection, [(r, n) for _, r, n in sorted(members)], private=private,
                              log=log)
    table = markdown_table(["model", "parameters", "test accuracy", "seeds", "repo"], rows, "lrrr")
    return pushed, table, url


def _collection_note(record, stats: SeedStats) -> str:
    seeds = f", mean ± std of {stats.n} seeds" if stats.n > 1 else ""
    return (f"{record.parameters:,} parameters · {stats.text()} test accuracy on "
            f"{record.dataset.name or 'its test split'}{seeds} (final epoch).")


def sync_collection(api: HfApi, namespace: str, title: str, members: list[tuple[str, str]], *,
                    private: bool = False, log=logger.info) -> str:
    """Make the collection `title` of `namespace` hold `members` ((model repo id, note), smallest first) first and
    in that order, each with its note; items someone else added stay, after them. Nothing is written when the
    collection already says all that. Its URL."""
    found = next((c for c in api.list_collections(owner=namespace) if c.title == title), None)
    if found is None:
        found = _with_retries(lambda: api.create_collection(
            title, namespace=namespace, private=private, exists_ok=True,
            description="Tiny image classifiers trained and published with tinyhub, smallest first."))
        log(f"created the collection {title!r}: {found.url}")
    slug = found.slug
    current = api.get_collection(slug)
    have = {(i.item_type, i.item_id): i for i in current.items}
    for repo_id, note in members:
        item = have.get(("model", repo_id))
        if item is None:
            _with_retries(lambda: api.add_collection_item(slug, repo_id, "model", note=note))
        elif item.note != note:
            _with_retries(lambda: api.update_collection_item(slug, item.item_object_id, note=note))
    items = api.get_collection(slug).items
    for position, (repo_id, _) in enumerate(members):
        item = next(i for i in items if i.item_type == "model" and i.item_id == repo_id)
        if items.index(item) != position:
            _with_retries(lambda: api.update_collection_item(slug, item.item_object_id, position=position))
            items = api.get_collection(slug).items  # a move shifts the others: read the order again
    return current.url
