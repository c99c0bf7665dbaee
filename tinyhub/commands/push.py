"""tinyhub push: publish a run (or a folder of runs) to the Hugging Face Hub with its model card.

    tinyhub push RUN_DIR --repo-id me/model4-mnist [--private] [--branch B] [--tag T]
                 [--create-pr] [--commit-message M] [--dry-run [OUT_DIR]]
    tinyhub push RUN_DIR --repo-id me/model4-digits --dataset-name my-digits   # data the run could not identify
    tinyhub push RUN_DIR --repo-id me/model4-mnist --space me/model4-demo        # also a Gradio demo Space
    tinyhub push --all RUNS_DIR --namespace me [--zoo-out ZOO.md] [--collection TITLE | --no-collection]

A run exported with `tinyhub export` also uploads its verified ONNX files (onnx/) and exports.json, and its card
gets a Deploy section. `--all` keeps a collection of the published models, smallest first ("tinyhub zoo").

The token is read from HF_TOKEN or the huggingface_hub login, never from the command line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from tinyhub.errors import TinyhubError, UsageError

from ._common import ArgumentParser, fail, run_reporting


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("run_dir", nargs="?", help="a finished run directory (with results.json and model/)")
    p.add_argument("--repo-id", help="NAMESPACE/NAME on the Hub")
    p.add_argument("--private", action="store_true")
    p.add_argument("--branch", default=None, help="branch to commit to (default main; created from main)")
    p.add_argument("--tag", default=None, help="tag the pushed commit; the card's snippet is pinned to it")
    p.add_argument("--move-tag", action="store_true",
                   help="move --tag to this push when it already names another commit (else that is refused)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--seed-runs", nargs="*", default=[], help="other seeds of the same recipe (card shows mean±std)")
    p.add_argument("--include-logs", action="store_true", help="also upload the TensorBoard logs")
    p.add_argument("--dry-run", nargs="?", const="", default=None, metavar="OUT_DIR",
                   help="write exactly what would be uploaded (default RUN_DIR/hub_upload, with --all "
                        "RUNS_DIR/hub_upload/<repo name>); contact no Hub, upload nothing. OUT_DIR must be new, "
                        "empty or a folder tinyhub staged before: a folder of yours is never replaced")
    p.add_argument("--space", default=None, metavar="NAMESPACE/NAME",
                   help="also publish a Gradio demo of the model as this Space, linked from the card (needs the "
                        "demo extra)")
    p.add_argument("--all", dest="all_runs", metavar="RUNS_DIR", help="publish every model found in RUNS_DIR")
    p.add_argument("--collection", default=None, metavar="TITLE",
                   help="with --all: the title of the collection of the published models (default \"tinyhub zoo\")")
    p.add_argument("--no-collection", action="store_true", help="with --all: keep no collection")
    p.add_argument("--namespace", help="with --all: the user or organisation to publish under")
    p.add_argument("--zoo-out", default=None, help="with --all: where to write the zoo table (Markdown)")
    p.add_argument("--dataset-name", default=None,
                   help="the dataset's name, for a run whose data could not be identified (never overrides "
                        "what results.json records)")
    p.add_argument("--dataset-id", default=None,
                   help="with --dataset-name: the dataset's Hub id (NAMESPACE/NAME), when it is on the Hub")
    p.add_argument("--project-url", default=os.environ.get("TINYHUB_PROJECT_URL") or None,
                   help="tinyhub's home page, linked from the card (default $TINYHUB_PROJECT_URL; none when unset)")
    return p


def main(argv: list[str] | None = None, prog: str = "tinyhub push") -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    if args.all_runs and not args.namespace:
        p.error("--all needs --namespace")
    if args.all_runs and (args.dataset_name or args.dataset_id):
        p.error("--dataset-name/--dataset-id name the data of one run; push that run on its own")
    if args.all_runs and args.space:
        p.error("--space publishes the demo of one run; push that run on its own")
    if not args.all_runs and (args.collection or args.no_collection):
        p.error("--collection and --no-collection go with --all")
    if not args.all_runs and (not args.run_dir or not args.repo_id):
        p.error("give RUN_DIR and --repo-id (or --all RUNS_DIR --namespace NS)")
    if not args.all_runs:  # the everyday mistakes, said before torch and the Hub client are imported
        from tinyhub.utils.hub_http import repo_id_problem

        problem = (repo_id_problem(args.repo_id) or (args.space and repo_id_problem(args.space, "--space"))
                   or (args.dataset_id and repo_id_problem(args.dataset_id, "--dataset-id")))
        if problem:
            return fail(UsageError(problem))
        run = Path(args.run_dir)
        if not (run / "results.json").is_file():
            what = "does not exist" if not run.exists() else "is not a tinyhub run: it has no results.json"
            return fail(TinyhubError(f"{run} {what}. Give a run directory, as `tinyhub train` writes it "
                                     "(results.json and model/)."))
    from tinyhub.trainer.logs import console_logging

    console_logging()
    return run_reporting(_push, args)


def _stop(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _push(args) -> int:
    from tinyhub.cards.publish import (COLLECTION_TITLE, check_repo_id, push_all, push_run, stage_all, stage_folder,
                                       staged_files)
    from tinyhub.utils.files import write_text_atomic

    if args.all_runs and args.dry_run is not None:  # a dry run never contacts the Hub, whatever else is asked
        out = Path(args.dry_run) if args.dry_run else Path(args.all_runs) / "hub_upload"
        for folder in stage_all(args.all_runs, args.namespace, out, tag=args.tag, project_url=args.project_url):
            print(f"  {folder}  ({len(staged_files(folder))} files)")
        print(f"dry run: one upload folder per model under {out}; nothing was uploaded.")
        return 0
    if args.all_runs:
        signal.signal(signal.SIGTERM, _stop)
        collection = None if args.no_collection else (args.collection or COLLECTION_TITLE)
        _, table, url = push_all(args.all_runs, args.namespace, private=args.private, tag=args.tag,
                                 project_url=args.project_url, collection=collection)
        out = Path(args.zoo_out or Path(args.all_runs) / "ZOO.md")
        write_text_atomic(out, table + (f"\nThe collection: [{collection}]({url})\n" if url else ""))
        print(table)
        print(f"zoo table written to {out}" + (f"; collection {collection!r}: {url}" if url else ""))
        return 0
    check_repo_id(args.repo_id)
    if args.space:
        check_repo_id(args.space)
    if args.dry_run is not None:
        out = Path(args.dry_run) if args.dry_run else Path(args.run_dir) / "hub_upload"
        stage_folder(args.run_dir, out, repo_id=args.repo_id, revision=args.tag or args.branch or "main",
                     seed_runs=args.seed_runs, include_logs=args.include_logs, project_url=args.project_url,
                     dataset_name=args.dataset_name, dataset_id=args.dataset_id, space_id=args.space)
        for f in staged_files(out):
            print(f"  {f.relative_to(out)}  ({f.stat().st_size:,} bytes)")
        print(f"dry run: the upload folder is {out}; nothing was uploaded.")
        return 0
    signal.signal(signal.SIGTERM, _stop)  # so that a killed push cleans up and says what the repository holds
    push_run(args.run_dir, args.repo_id, private=args.private, branch=args.branch, tag=args.tag,
             create_pr=args.create_pr, commit_message=args.commit_message, seed_runs=args.seed_runs,
             include_logs=args.include_logs, project_url=args.project_url, dataset_name=args.dataset_name,
             dataset_id=args.dataset_id, space_id=args.space, move_tag=args.move_tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
