"""Evaluation's forward alone, by batch size and memory layout: the seconds to predict 10,000 28x28 images in
fp32 with `torch.no_grad()`, 2 torch threads, freshly initialised models (weights do not change the time), and
whether the logits are the same bits as at batch 1000 in the same layout.

    python results/experiments/speed-pooling-and-eval-batch/eval_layout.py \
        > results/experiments/speed-pooling-and-eval-batch/eval_layout.txt

The engine evaluates with data.eval_batch_size (default 250; 1000 before 2026-12-01) in NCHW, or in
channels_last when the recipe or a stack of seeds trains in it.
"""

import time

import torch

from tinyhub import create_model

torch.set_num_threads(2)
torch.manual_seed(0)
images = torch.rand(10000, 1, 28, 28)
for name in ("gap20k", "efficient", "model4", "gap8k", "opt6k"):
    model = create_model(name).eval()
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        reference = None
        for batch in (1000, 500, 250, 128):
            with torch.no_grad():
                model(images[:batch].contiguous(memory_format=fmt))  # warm-up
                t0 = time.perf_counter()
                logits = torch.cat([model(images[i:i + batch].contiguous(memory_format=fmt))
                                    for i in range(0, len(images), batch)])
                seconds = time.perf_counter() - t0
            reference = logits if reference is None else reference
            print(f"{name:10} batch {batch:5} {'channels_last' if channels_last else 'NCHW':13} {seconds:.2f} s"
                  f"  logits {'identical to' if torch.equal(logits, reference) else 'DIFFER from'} batch 1000",
                  flush=True)
