"""Opt-in: publish to the real Hugging Face Hub. Skipped unless TINYHUB_REAL_HUB_TOKEN holds a write token
(and the network reaches huggingface.co). It pushes a tiny run to a private throwaway repo, loads it back in a
fresh process, and deletes the repo."""

import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import SAFETY_TIMEOUT, TINYHUB

TOKEN = os.environ.get("TINYHUB_REAL_HUB_TOKEN")
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not TOKEN, reason="opt-in: set TINYHUB_REAL_HUB_TOKEN to test against the real Hub")]


def _real_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf"))
    return env


def test_push_and_load_on_the_real_hub(tiny_runs, tmp_path):
    env = _real_env(tmp_path)
    who = subprocess.run([sys.executable, "-c", "from huggingface_hub import whoami; print(whoami()['name'])"],
                         env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    if who.returncode != 0:
        pytest.skip(f"the real Hub is not reachable from here: {who.stderr.strip()[-200:]}")
    repo = f"{who.stdout.strip()}/tinyhub-test-{uuid.uuid4().hex[:8]}"
    try:
        r = subprocess.run([TINYHUB, "push", str(tiny_runs[0]), "--repo-id", repo,
                            "--private", "--tag", "v1"], env=env, capture_output=True, text=True,
                           timeout=SAFETY_TIMEOUT)
        assert r.returncode == 0, r.stderr[-2000:]
        code = (f"import tinyhub; m = tinyhub.from_pretrained({repo!r}, revision='v1'); "
                "print(m.num_parameters())")
        load = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=SAFETY_TIMEOUT)
        expected = json.loads((tiny_runs[0] / "results.json").read_text())["parameters"]
        assert load.stdout.strip().splitlines()[-1] == str(expected), load.stderr[-2000:]
    finally:
        subprocess.run([sys.executable, "-c", f"from huggingface_hub import delete_repo; delete_repo({repo!r}, "
                        "missing_ok=True)"], env=env, capture_output=True, timeout=SAFETY_TIMEOUT)
