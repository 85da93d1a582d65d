"""Greedy k-center coreset selection (PatchCore, Roth et al. 2022, sec. 3.2)."""

from __future__ import annotations

import torch


def greedy_coreset(
    features: torch.Tensor,
    n_select: int,
    *,
    projection_dim: int | None = 128,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Indices of ``n_select`` rows chosen so every row is close to a chosen one.

    Each step adds the row farthest from the current selection (a
    2-approximation of the minimax facility location problem). Distances are
    measured after a Gaussian random projection to ``projection_dim``
    dimensions (Johnson-Lindenstrauss), which keeps them nearly unchanged while
    making each step much cheaper; None skips the projection.
    """
    n = features.shape[0]
    if n_select >= n:
        return torch.arange(n)
    if n_select < 1:
        raise ValueError(f"n_select must be >= 1, got {n_select}")
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if projection_dim is not None and projection_dim < x.shape[1]:
        proj = torch.randn(x.shape[1], projection_dim, generator=gen) / projection_dim**0.5
        x = x @ proj
    start = int(torch.randint(n, (1,), generator=gen))
    selected = torch.empty(n_select, dtype=torch.long)
    selected[0] = start
    sq = (x * x).sum(dim=1)

    def dist2(i: int) -> torch.Tensor:
        # ||x - c||^2 via one matrix-vector product: no N x D temporary per step.
        return (sq - 2.0 * (x @ x[i]) + sq[i]).clamp_min_(0.0)

    min_d2 = dist2(start)
    steps = range(1, n_select)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="coreset", unit="pt", leave=False, mininterval=0.5)
    for i in steps:
        nxt = int(torch.argmax(min_d2))
        selected[i] = nxt
        torch.minimum(min_d2, dist2(nxt), out=min_d2)
    return selected
