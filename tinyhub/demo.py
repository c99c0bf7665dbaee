"""A Gradio demo of one model: draw on a sketchpad or upload an image, see the most likely classes.

    from tinyhub.demo import build_demo
    build_demo(tinyhub.from_pretrained("me/model4-mnist")).launch()     # or: tinyhub demo RUN|REPO

The picture is brought to what the model was trained on, using only what the model itself records (input size,
channels, normalisation, class names): flattened onto white, converted to the model's channels, inverted when its
training images are dark with light strokes (MNIST's mean is 0.13) and the picture is not, and, for such
single-channel models, cropped to the strokes, scaled to fit 20 of 28 pixels and centred on their centre of mass,
as MNIST's digits were. Needs gradio (`pip install "tinyhub[demo]"`); the preprocessing needs torch alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinyhub.utils.images import MAX_PIXELS, ImageTooLargeError, open_image

#: MNIST's digits fill a 20x20 box inside 28x28.
FILL = 20 / 28
TOP_CLASSES = 3


def dark_background(model) -> bool:
    """Whether the model's training images are mostly dark (light strokes on black, like MNIST)."""
    return float(np.mean(model.mean)) < 0.5


def to_model_pixels(picture: np.ndarray, model) -> torch.Tensor:
    """A picture (H, W), (H, W, 3) or (H, W, 4), uint8 -> uint8 (1, C, S, S) as the model's training images."""
    image = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255)
    if image.ndim == 2:
        image = image.unsqueeze(-1)
    if image.shape[-1] == 4:  # transparent parts (an untouched sketchpad) count as white paper
        rgb, alpha = image[..., :3], image[..., 3:]
        image = rgb * alpha + (1 - alpha)
    image = image.permute(2, 0, 1)  # (C, H, W)
    if model.in_chans == 1 and image.shape[0] == 3:
        image = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)
    elif model.in_chans == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    grey = image.mean(0)  # brightness, whatever the channels
    border = torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if dark_background(model) != (float(border.median()) < 0.5):
        image = 1 - image
    size = model.input_size
    if model.in_chans == 1 and dark_background(model):
        image = _centre_strokes(image[0], size).unsqueeze(0)
    else:
        image = F.interpolate(image.unsqueeze(0), size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0]
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(0)


def _centre_strokes(image: torch.Tensor, size: int) -> torch.Tensor:
    """Light strokes on black (H, W) -> (size, size): cropped to the strokes, scaled to fit FILL of the side,
    placed with their centre of mass at the centre."""
    ink = image > 0.1 * float(image.max()) if float(image.max()) > 0 else None
    if ink is None or not bool(ink.any()):
        return torch.zeros(size, size)
    rows, cols = torch.nonzero(ink.any(1)).flatten(), torch.nonzero(ink.any(0)).flatten()
    crop = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = FILL * size / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = F.interpolate(crop[None, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    total = float(small.sum()) or 1.0
    cy = float((small.sum(1) * torch.arange(h)).sum()) / total
    cx = float((small.sum(0) * torch.arange(w)).sum()) / total
    top = min(max(round(size / 2 - cy - 0.5), 0), size - h)
    left = min(max(round(size / 2 - cx - 0.5), 0), size - w)
    canvas = torch.zeros(size, size)
    canvas[top:top + h, left:left + w] = small
    return canvas


def classify(model, picture) -> dict[str, float]:
    """Class name -> probability for one picture (a sketchpad's value, an image, or an image file's path); {} for
    nothing drawn. A file declaring more than MAX_PIXELS pixels raises ImageTooLargeError before it is decoded."""
    if isinstance(picture, dict):  # the sketchpad: its layers flattened onto its background
        picture = picture.get("composite")
    if isinstance(picture, (str, Path)):  # an upload: opened here, so that its size is checked before decoding
        with open_image(picture) as img:
            picture = np.asarray(img.convert("RGBA"))
    if picture is None or np.asarray(picture).size == 0:
        return {}
    pixels = to_model_pixels(np.asarray(picture), model)
    with torch.no_grad():
        probs = model(model.normalize(pixels)).float().softmax(-1)[0]
    return {model.id2label[str(i)]: float(p) for i, p in enumerate(probs)}


def _classify_upload(model, path) -> dict[str, float]:
    import gradio as gr

    try:
        return classify(model, path)
    except ImageTooLargeError as e:
        raise gr.Error(f"The image declares {e.width:,} x {e.height:,} pixels, more than the demo reads "
                       f"({MAX_PIXELS:,}): upload a smaller one.") from e


def build_demo(model, *, title: str | None = None, description: str | None = None):
    """The Gradio app: a Draw tab (sketchpad) and an Upload tab, each with a Classify button; the top classes below."""
    import gradio as gr

    model = model.eval()
    title = title or f"{model.architecture}: {model.num_parameters():,} parameters"
    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}\n\n{description or ''}\n\nPick the brush left of the canvas, draw, then press "
                    "Classify; or upload an image.")
        # One column: in a row, the sketchpad lays its paper out for the row's first width and keeps it there when
        # the row narrows, off the middle of its canvas (Gradio 6).
        with gr.Tab("Draw"):
            sketch = gr.Sketchpad(label="Draw here", type="numpy", image_mode="RGBA", canvas_size=(280, 280),
                                  brush=gr.Brush(default_size=18, colors=["#000000"]))
            draw_button = gr.Button("Classify the drawing", variant="primary")
        with gr.Tab("Upload"):
            # A path, not pixels: Gradio then only reads the header, and classify() refuses a pixel bomb unopened
            upload = gr.Image(label="An image", type="filepath", image_mode=None, sources=["upload"])
            upload_button = gr.Button("Classify the image", variant="primary")
        label = gr.Label(num_top_classes=TOP_CLASSES, label="Most likely classes")
        draw_button.click(lambda picture: classify(model, picture), sketch, label, api_name="classify_drawing")
        upload_button.click(lambda picture: _classify_upload(model, picture), upload, label,
                            api_name="classify_image")
    return demo
