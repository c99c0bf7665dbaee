"""Every random stream of a run, from one formula of (stream, seed, epoch, rank).

A stream is independent of every other (a hash, not a sum that two streams could share), and depends on nothing
else: resuming at an epoch boundary replays exactly what an uninterrupted run would have drawn, and a model trained
beside others draws exactly what it would draw alone.
"""

from __future__ import annotations

import hashlib

import torch

#: The streams a run draws from: sample order, augmentation, torch's global RNG (dropout, anything else).
STREAMS = ("order", "augment", "torch")
#: The validation images carved from train (data.val_size) are the same whatever the training seed.
VALIDATION_SPLIT_SEED = 1234


def stream_seed(stream: str, seed: int, epoch: int = 0, rank: int = 0) -> int:
    """A 63-bit seed for one stream of one (seed, epoch, rank)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; one of {STREAMS}")
    digest = hashlib.sha256(f"tinyhub:{stream}:{int(seed)}:{int(epoch)}:{int(rank)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(stream: str, seed: int, epoch: int = 0, rank: int = 0, device="cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(stream, seed, epoch, rank))
    return g


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed torch's global RNG (dropout masks and anything else drawn from it) for one epoch on one rank."""
    torch.manual_seed(stream_seed("torch", seed, epoch, rank))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n training samples in one epoch: the same on every rank, which then take their shards."""
    return torch.randperm(n, generator=generator("order", seed, epoch))


def validation_permutation(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SPLIT_SEED))
