"""Publish a tinyhub run (or a folder of runs) to the Hugging Face Hub.

    python scripts/push.py RUN_DIR --repo-id me/model4-mnist [--private] [--branch B] [--tag T]
                           [--create-pr] [--commit-message M] [--dry-run [OUT_DIR]]
    python scripts/push.py --all RUNS_DIR --namespace me [--zoo-out ZOO.md]

The token is read from HF_TOKEN or the huggingface_hub login, never from the command line.
"""

import argparse
import sys
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from cards import CardError
from cards.publish import NETWORK_ERRORS, PushError, check_repo_id, push_all, push_run, stage_folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", help="a finished run directory (with results.json and model/)")
    p.add_argument("--repo-id", help="NAMESPACE/NAME on the Hub")
    p.add_argument("--private", action="store_true")
    p.add_argument("--branch", default=None, help="branch to commit to (default main; created from main)")
    p.add_argument("--tag", default=None, help="tag the pushed commit; the card's snippet is pinned to it")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--seed-runs", nargs="*", default=[], help="other seeds of the same recipe (card shows mean±std)")
    p.add_argument("--include-logs", action="store_true", help="also upload the TensorBoard logs")
    p.add_argument("--dry-run", nargs="?", const="", default=None, metavar="OUT_DIR",
                   help="write exactly the folder that would be uploaded (default RUN_DIR/hub_upload); upload nothing")
    p.add_argument("--all", dest="all_runs", metavar="RUNS_DIR", help="publish every model found in RUNS_DIR")
    p.add_argument("--namespace", help="with --all: the user or organisation to publish under")
    p.add_argument("--zoo-out", default=None, help="with --all: where to write the zoo table (Markdown)")
    args = p.parse_args(argv)
    try:
        if args.all_runs:
            if not args.namespace:
                p.error("--all needs --namespace")
            _, table = push_all(args.all_runs, args.namespace, private=args.private, tag=args.tag)
            out = Path(args.zoo_out or Path(args.all_runs) / "ZOO.md")
            out.write_text(table)
            print(table)
            print(f"zoo table written to {out}")
            return 0
        if not args.run_dir or not args.repo_id:
            p.error("give RUN_DIR and --repo-id (or --all RUNS_DIR --namespace NS)")
        check_repo_id(args.repo_id)
        if args.dry_run is not None:
            out = Path(args.dry_run) if args.dry_run else Path(args.run_dir) / "hub_upload"
            stage_folder(args.run_dir, out, repo_id=args.repo_id, revision=args.tag or args.branch or "main",
                         seed_runs=args.seed_runs, include_logs=args.include_logs)
            for f in sorted(x for x in out.rglob("*") if x.is_file()):
                print(f"  {f.relative_to(out)}  ({f.stat().st_size:,} bytes)")
            print(f"dry run: the upload folder is {out}; nothing was uploaded.")
            return 0
        push_run(args.run_dir, args.repo_id, private=args.private, branch=args.branch, tag=args.tag,
                 create_pr=args.create_pr, commit_message=args.commit_message, seed_runs=args.seed_runs,
                 include_logs=args.include_logs)
        return 0
    except (PushError, CardError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        hint = " Check HF_TOKEN (or `hf auth login`) and that it can write to this namespace." if status in (401, 403) else ""
        print(f"error: the Hub answered {status}: {e.server_message or e}.{hint}", file=sys.stderr)
        return 2
    except NETWORK_ERRORS as e:  # network down, DNS, refused connections, timeouts
        print(f"error: could not reach the Hub ({e.__class__.__name__}: {e}). Nothing was published.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
