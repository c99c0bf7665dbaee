"""tinyhub demo and the demo Space: a drawing is brought to what the model trained on, and in a real browser
(Debian's Chromium driven by Playwright) a stroke drawn on the sketchpad is classified and the result shown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINYHUB, hub_client, is_real_mnist
from hubserver import free_port
from tinyhub import modeling
from tinyhub.demo import classify, to_model_pixels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _stroke_on_paper(size: int = 280, rgba: bool = False) -> np.ndarray:
    """A black vertical stroke on white (or, RGBA, on transparent paper), like a sketchpad's drawing."""
    image = np.full((size, size, 4 if rgba else 3), 255, dtype=np.uint8)
    if rgba:
        image[..., 3] = 0
    image[60:220, 150:170, :3] = 0
    if rgba:
        image[60:220, 150:170, 3] = 255
    return image


def test_a_drawing_becomes_a_centred_light_on_dark_digit_like_the_training_images():
    model = modeling.create_model("opt6k").eval()  # MNIST statistics: dark images with light strokes
    for picture in (_stroke_on_paper(), _stroke_on_paper(rgba=True)):
        pixels = to_model_pixels(picture, model)
        assert pixels.shape == (1, 1, 28, 28) and pixels.dtype == torch.uint8
        ink = pixels[0, 0] > 128
        rows, cols = torch.nonzero(ink.any(1)).flatten(), torch.nonzero(ink.any(0)).flatten()
        assert int(rows[-1] - rows[0]) + 1 in (19, 20, 21)  # scaled to fill 20 of 28 pixels, like MNIST's digits
        assert abs(float(rows.float().mean()) - 13.5) <= 1.5 and abs(float(cols.float().mean()) - 13.5) <= 1.5
        assert int(pixels[0, 0, 0, 0]) == 0 and int(pixels.max()) == 255  # white on black now
    light_on_dark = 255 - _stroke_on_paper()[..., 0]  # already like MNIST: not inverted
    assert torch.equal(to_model_pixels(light_on_dark, model), to_model_pixels(_stroke_on_paper(), model))
    assert classify(model, None) == {} and classify(model, {"composite": None}) == {}
    probs = classify(model, {"composite": _stroke_on_paper(rgba=True)})
    assert list(probs) == [model.id2label[str(i)] for i in range(10)] and abs(sum(probs.values()) - 1) < 1e-5


def test_a_colour_model_on_light_images_is_resized_not_inverted():
    model = modeling.create_model("opt6k", in_chans=3, input_size=32, mean=(0.5, 0.5, 0.6), std=(0.2, 0.2, 0.2))
    photo = np.full((64, 48, 3), 200, dtype=np.uint8)  # a light picture, like the training images
    photo[..., 2] = 220
    pixels = to_model_pixels(photo, model)
    assert pixels.shape == (1, 3, 32, 32)
    assert [int(pixels[0, c].float().mean().round()) for c in range(3)] == [200, 200, 220]


@pytest.fixture(scope="module")
def digit_run(mnist_dir, tmp_path_factory):
    """fast99 trained on the test data (real MNIST in CI: one epoch, about 99%)."""
    from tinyhub import trainer

    folder = tmp_path_factory.mktemp("demo") / "fast99"
    cfg = trainer.load_config(["model=fast99", f"data.dir={mnist_dir}", "progress=false", f"run.dir={folder}"])
    return trainer.train(cfg)


def _serve(cmd: list[str], env: dict, ready: str) -> tuple[subprocess.Popen, list[str]]:
    """Start `cmd` and return once it printed a line containing `ready` (its lines so far, and on)."""
    env = {**env, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                seen.set()
        seen.set()  # the process ended: the caller finds out from its exit status

    threading.Thread(target=read, daemon=True).start()
    seen.wait()
    assert proc.poll() is None, "".join(lines)[-3000:]
    return proc, lines


def _draw_and_read(url: str) -> tuple[str, list[str]]:
    """In Chromium: pick the brush, draw a vertical stroke, press Classify; the top class and the classes shown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url)
            page.wait_for_selector("canvas")  # the sketchpad is drawn: its tools now respond
            page.get_by_role("button", name="Brush").first.click()
            canvas = next(c for c in page.locator("canvas").all() if c.is_visible())
            box = None
            for _ in range(100):  # until the layout has settled: the sketchpad's paper moves while the page loads
                page.wait_for_timeout(100)
                now = canvas.bounding_box()
                if now == box:
                    break
                box = now
            x = box["x"] + box["width"] / 2
            page.mouse.move(x, box["y"] + box["height"] * 0.2)
            page.mouse.down()
            page.mouse.move(x, box["y"] + box["height"] * 0.8, steps=25)
            page.mouse.up()
            page.get_by_role("button", name="Classify the drawing").click()
            top = page.locator("[data-testid=label-output-value]")
            top.wait_for(state="attached")
            shown = page.locator("[data-testid$=-confidence-set] dt").all_inner_texts()
            return top.inner_text().strip(), shown
        finally:
            browser.close()


def _serve_draw_and_check(cmd: list[str], env: dict, ready: str, port: int, run: Path, mnist_dir) -> None:
    """Serve the app, draw a stroke on it in Chromium, and check the classes it shows for the run's model."""
    proc, _ = _serve(cmd, env, ready)
    try:
        top, shown = _draw_and_read(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait()
    model = modeling.from_pretrained(run / "model")
    names = [model.id2label[str(i)] for i in range(model.num_classes)]
    assert top in names and len(shown) == 3 and shown[0] == top and set(shown) <= set(names)
    if is_real_mnist(mnist_dir):
        assert top == "1"  # a vertical stroke, read as MNIST's one


@pytest.mark.e2e
def test_tinyhub_demo_classifies_a_stroke_drawn_in_a_real_browser(digit_run, mnist_dir):
    if not CHROMIUM:
        pytest.skip("Chromium is not installed here (.ci/run installs Debian's chromium when it can)")
    port = free_port()
    _serve_draw_and_check([TINYHUB, "demo", str(digit_run), "--port", str(port)], dict(os.environ),
                          "Serving the demo", port, digit_run, mnist_dir)


@pytest.mark.e2e
def test_push_space_publishes_the_demo_and_the_space_app_runs_in_a_browser(hub, digit_run, mnist_dir, tmp_path):
    repo, space = "tester/demo-fast99", "tester/fast99-demo"
    r = hub_client(hub, tmp_path, "push", str(digit_run), "--repo-id", repo, "--space", space)
    assert r.returncode == 0, r.stderr[-3000:]
    assert set(hub.list_files(space, repo_type="space")) >= {"app.py", "requirements.txt", "README.md"}
    card = hub.read_file(repo, "README.md").decode()
    assert f"[{space}](https://huggingface.co/spaces/{space})" in card
    import tinyhub

    assert hub.read_file(space, "requirements.txt", repo_type="space").decode() == f"tinyhub=={tinyhub.__version__}\n"
    space_readme = hub.read_file(space, "README.md", repo_type="space").decode()
    assert re.search(r"^sdk: gradio$", space_readme, re.M) and f"- {repo}" in space_readme
    app = hub.read_file(space, "app.py", repo_type="space").decode()
    assert f'revision="{hub.head(repo)}"' in app  # the exact commit that was pushed
    info = hub_client(hub, tmp_path, code=f"from huggingface_hub import HfApi; print(HfApi().model_info({repo!r}).spaces)")
    assert info.stdout.strip() == str([space]), info.stderr[-2000:]
    # Pushing again changes nothing: no commit to the model, none to the Space.
    commits = (len(hub.commits(repo)), len(hub.commits(space, repo_type="space")))
    again = hub_client(hub, tmp_path, "push", str(digit_run), "--repo-id", repo, "--space", space)
    assert again.returncode == 0 and "already serves this model" in again.stdout + again.stderr
    assert (len(hub.commits(repo)), len(hub.commits(space, repo_type="space"))) == commits
    if not CHROMIUM:
        pytest.skip("Chromium is not installed here (.ci/run installs Debian's chromium when it can)")
    # The Space's app as the Space runs it: `python app.py`, loading the model from the (local) Hub.
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "app.py").write_text(app)
    port = free_port()
    env = {**hub.client_env(tmp_path / "hf_home_space", token=None), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    _serve_draw_and_check([sys.executable, str(folder / "app.py")], env, "Running on local URL", port, digit_run,
                          mnist_dir)


@pytest.mark.e2e
def test_push_space_without_gradio_names_the_extra(hub, tiny_runs, tmp_path):
    code = ("import sys, builtins\n"
            "from importlib import metadata\n"
            "real = metadata.version\n"
            "def version(name):\n"
            "    if name == 'gradio':\n"
            "        raise metadata.PackageNotFoundError(name)\n"
            "    return real(name)\n"
            "metadata.version = version\n"
            "from tinyhub.cli import main\n"
            f"sys.exit(main(['push', {str(tiny_runs[0])!r}, '--repo-id', 'tester/nogradio', '--space', "
            "'tester/nogradio-demo']))\n")
    r = hub_client(hub, tmp_path, code=code)
    assert r.returncode == 1 and 'pip install "tinyhub[demo]"' in r.stderr and "Traceback" not in r.stderr
    assert not hub.repo_exists("tester/nogradio")  # said before anything was published


def test_an_uploaded_pixel_bomb_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A few kilobytes of PNG declaring 13,000 x 13,000 pixels: the demo reads its header and stops."""
    import PIL.ImageFile
    from PIL import Image

    from tinyhub.utils.images import ImageTooLargeError

    bomb = tmp_path / "bomb.png"
    Image.new("1", (13_000, 13_000)).save(bomb, optimize=True)
    decoded = []
    real_load = PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    model = modeling.create_model("gap2k")
    with pytest.raises(ImageTooLargeError, match="13,000 x 13,000 pixels"):
        classify(model, str(bomb))
    assert decoded == []
    small = tmp_path / "small.png"
    Image.fromarray(_stroke_on_paper()).save(small)
    assert set(classify(model, str(small))) == set(model.id2label.values())  # an ordinary upload: classified


def test_a_port_in_use_is_one_line_naming_port(tiny_runs, capsys):
    import socket

    from tinyhub.commands import demo as demo_command

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = demo_command.main([str(tiny_runs[0]), "--port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"port {port}" in err[0] and "--port" in err[0], err
