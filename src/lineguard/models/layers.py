"""Torch building blocks shared by the anomaly models; all export to ONNX."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lineguard.backbones import FeatureExtractor


class PatchEmbedding(nn.Module):
    """Locally aware patch features at stride 8 (PatchCore, Roth et al. 2022, sec. 3.1).

    Each stage's map is averaged over a ``patch_size`` neighbourhood, the
    stride-16 map is upsampled onto the stride-8 grid, and both are concatenated.
    ``patch_size=1`` gives PaDiM's plain concatenation.
    """

    def __init__(self, backbone: FeatureExtractor, patch_size: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch_size = patch_size
        self.channels = sum(backbone.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8, f16 = self.backbone(x)
        if self.patch_size > 1:
            pad = self.patch_size // 2
            f8 = F.avg_pool2d(f8, self.patch_size, 1, pad, count_include_pad=False)
            f16 = F.avg_pool2d(f16, self.patch_size, 1, pad, count_include_pad=False)
        f16 = F.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([f8, f16], dim=1)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(4 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class AnomalyMapHead(nn.Module):
    """Patch score grid -> full-size anomaly map: bilinear upsampling, Gaussian smoothing."""

    kernel: torch.Tensor

    def __init__(self, out_size: tuple[int, int], sigma: float = 4.0) -> None:
        super().__init__()
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.sigma = float(sigma)
        self.register_buffer("kernel", gaussian_kernel1d(sigma), persistent=False)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """grid (N, h, w) -> map (N, H, W)."""
        m = F.interpolate(grid[:, None], size=self.out_size, mode="bilinear", align_corners=False)
        if self.sigma > 0:
            k = self.kernel
            r = k.numel() // 2
            # Separable blur with reflect padding, so borders are not darkened.
            m = F.pad(m, [r, r, 0, 0], mode="reflect")
            m = F.conv2d(m, k.view(1, 1, 1, -1))
            m = F.pad(m, [0, 0, r, r], mode="reflect")
            m = F.conv2d(m, k.view(1, 1, -1, 1))
        return m[:, 0]


# The (queries x bank) distance block the eager search holds at once: 2^24 floats = 64 MB.
SEARCH_BLOCK_ELEMENTS = 1 << 24


def nearest_neighbour(
    queries: torch.Tensor, bank: torch.Tensor, bank_sq_norm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query row to its nearest bank row, and that row's index (exact).

    ||q - b||^2 = ||q||^2 - 2 q.b + ||b||^2 turns the search into one matrix
    product, which BLAS (and ONNX Runtime's Gemm) run fast. ||b||^2 rides in the product as its
    bias (one addmm / Gemm writes the (queries x bank) matrix, no element-wise pass over it), and
    ||q||^2, the same for a whole row, is added after the row's minimum.
    """
    rows = max(1, SEARCH_BLOCK_ELEMENTS // max(1, int(bank.shape[0])))
    if queries.shape[0] > rows and not torch.onnx.is_in_onnx_export():
        # Eager (fit, evaluate on a model folder): queries in blocks, so memory stays bounded
        # whatever the batch, the image size or the bank.
        parts = [nearest_neighbour(block, bank, bank_sq_norm) for block in queries.split(rows)]
        return torch.cat([d for d, _ in parts]), torch.cat([i for _, i in parts])
    d2 = torch.addmm(bank_sq_norm[None, :], queries, bank.T, beta=1.0, alpha=-2.0)
    best = d2.min(dim=1)
    q_sq = (queries * queries).sum(dim=1)
    return (best.values + q_sq).clamp_min(0.0).sqrt(), best.indices


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, bank_sq_norm: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest bank row (exact)."""
    return nearest_neighbour(queries, bank, bank_sq_norm)[0]


def reweighted_max_score(
    queries: torch.Tensor,
    distances: torch.Tensor,
    nearest: torch.Tensor,
    bank: torch.Tensor,
    bank_sq_norm: torch.Tensor,
    neighbours: int,
) -> torch.Tensor:
    """PatchCore's image score (Roth et al. 2022, eq. 7): the highest patch score s* = ||m_test - m*||,
    weighted by 1 - exp(||m_test - m*||) / sum over the ``neighbours`` bank rows nearest m* (m* among
    them) of exp(||m_test - m||): a softmax over those distances, so nothing overflows.

    queries (N, P, C), distances and nearest (N, P): each patch's feature, nearest-bank distance
    and index. Returns (N,)."""
    n, _, c = queries.shape
    worst = distances.argmax(dim=1, keepdim=True)  # (N, 1)
    score = distances.gather(1, worst)[:, 0]
    query = queries.gather(1, worst[:, :, None].expand(n, 1, c))[:, 0]  # (N, C)
    anchor = bank.index_select(0, nearest.gather(1, worst)[:, 0])  # m*, (N, C)
    to_anchor = bank_sq_norm[None, :] - 2.0 * anchor @ bank.T  # ||m* - b||^2 less a per-row constant
    k = min(int(neighbours), int(bank.shape[0]))
    support = to_anchor.topk(k, dim=1, largest=False).indices  # (N, k), m* first
    rows = bank.index_select(0, support.reshape(-1)).reshape(n, k, c)
    d = ((rows - query[:, None, :]) ** 2).sum(dim=2).clamp_min(0.0).sqrt()  # (N, k)
    return (1.0 - torch.softmax(d, dim=1)[:, 0]) * score


class ImageScore(nn.Module):
    """Part score from its anomaly map.

    ``top_k`` > 0: the mean of the ``top_k`` highest map pixels. A crack or
    scratch lights up many pixels while dust and sensor noise light up few, so
    averaging the top 1 % separates them better than the single maximum (see
    docs/benchmarks.md). ``top_k`` = 0: the highest patch score, as in the papers.
    """

    def __init__(self, top_k: int) -> None:
        super().__init__()
        self.top_k = int(top_k)

    def forward(self, grid: torch.Tensor, amap: torch.Tensor) -> torch.Tensor:
        if self.top_k <= 0:
            return grid.flatten(1).max(dim=1).values
        return amap.flatten(1).topk(self.top_k, dim=1).values.mean(dim=1)


def top_k_pixels(top_fraction: float | None, image_size: tuple[int, int]) -> int:
    if not top_fraction:
        return 0
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1] or None, got {top_fraction}")
    return max(1, round(top_fraction * image_size[0] * image_size[1]))
