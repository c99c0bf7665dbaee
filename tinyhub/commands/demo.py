"""tinyhub demo: a Gradio app to try a model: draw on a sketchpad or upload an image, see the top classes.

    tinyhub demo runs/model4-s0-...                  # a run directory (its title gives the run's test accuracy)
    tinyhub demo me/model4-mnist@v1 --port 7861      # a Hub repo id, optional @revision; or a saved model folder

It serves on http://127.0.0.1:7860 (--host, --port) until Ctrl+C. `tinyhub push RUN --space NAMESPACE/NAME`
publishes the same app as a Hugging Face Space.
"""

from __future__ import annotations

import argparse
import sys

from ._common import ArgumentParser, run_model_command


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("model", help="run directory, saved model folder, or Hub repo id[@revision]")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    return p


def main(argv: list[str] | None = None, prog: str = "tinyhub demo") -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error(f"--port must be between 1 and 65535, got {args.port}")
    return run_model_command(_demo, args)


def _port_taken(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _demo(args) -> int:
    from tinyhub.errors import UsageError

    if _port_taken(args.host, args.port):  # said before the model loads, in one line
        raise UsageError(f"port {args.port} on {args.host} is in use (another demo or server?): choose another with "
                         f"--port, e.g. --port {args.port + 1}.")
    from tinyhub.demo import build_demo
    from tinyhub.trainer.evaluation import load_model, resolve_model

    source = resolve_model(args.model)
    model = load_model(source)
    description = None
    if source.run_results is not None:
        r = source.run_results
        description = (f"Test accuracy {r.final.test_accuracy:.2f}% on {r.dataset.name or 'its test split'} "
                       f"(final epoch), {r.parameters:,} parameters.")
    demo = build_demo(model, description=description)
    demo.launch(server_name=args.host, server_port=args.port, show_error=True, quiet=True, prevent_thread_lock=True)
    # Said once the server answers, so that whoever waits for this line (a person, a script) can open it at once.
    print(f"Serving the demo of {args.model} on http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
