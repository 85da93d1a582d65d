"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", 2022).

A memory bank of locally aware patch features from good parts, thinned by a
greedy coreset; a patch's anomaly score is its distance to the nearest bank
entry, the part's score the largest patch score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from lineguard.backbones import create_backbone
from lineguard.backbones.registry import FeatureExtractor
from lineguard.models.base import AnomalyModel
from lineguard.models.coreset import greedy_coreset
from lineguard.models.layers import (
    AnomalyMapHead,
    ImageScore,
    PatchEmbedding,
    nearest_neighbour,
    reweighted_max_score,
)
from lineguard.train.config import AnomalyConfig, default


class PatchCoreModule(nn.Module):
    """Normalised images (N, 3, H, W) -> (scores (N,), maps (N, H, W)). Pure, exportable."""

    memory_bank: torch.Tensor
    bank_sq_norm: torch.Tensor

    def __init__(
        self,
        backbone: FeatureExtractor,
        image_size: tuple[int, int],
        bank_size: int,
        patch_size: int = 3,
        sigma: float = 4.0,
        top_k: int = 0,
        reweight_neighbours: int = 0,
    ) -> None:
        super().__init__()
        if reweight_neighbours and top_k:
            raise ValueError("re-weighting applies to the highest patch score (top_k = 0)")
        self.embedding = PatchEmbedding(backbone, patch_size)
        self.score = ImageScore(top_k)
        self.reweight_neighbours = int(reweight_neighbours)
        dim = self.embedding.channels
        self.register_buffer("memory_bank", torch.zeros(bank_size, dim))
        self.register_buffer("bank_sq_norm", torch.zeros(bank_size))
        self.head = AnomalyMapHead(image_size, sigma)

    def set_memory_bank(self, bank: torch.Tensor) -> None:
        self.memory_bank = bank.contiguous()
        self.bank_sq_norm = (bank * bank).sum(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embedding(x)
        n, c, h, w = emb.shape
        queries = emb.permute(0, 2, 3, 1).reshape(n * h * w, c)
        distances, nearest = nearest_neighbour(queries, self.memory_bank, self.bank_sq_norm)
        grid = distances.reshape(n, h, w)
        amap = self.head(grid)
        if self.reweight_neighbours:
            bank, norms = self.memory_bank, self.bank_sq_norm
            score = reweighted_max_score(
                queries.reshape(n, h * w, c),
                distances.reshape(n, h * w),
                nearest.reshape(n, h * w),
                bank,
                norms,
                self.reweight_neighbours,
            )
            return score, amap
        return self.score(grid, amap), amap


class PatchCore(AnomalyModel):
    """PatchCore with the sklearn-style contract of :class:`AnomalyModel`.

    ``coreset_ratio`` defaults to 1 %: the paper reports PatchCore-1% within a
    few tenths of a point of 10 % on MVTec AD, at a tenth of the search cost.
    At most ``max_pool`` patches (a seeded random subset) enter the greedy
    selection, which bounds fitting time on large training sets.
    """

    kind = "patchcore"

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: tuple[int, int] = (256, 256),
        *,
        coreset_ratio: float = default(AnomalyConfig, "coreset_ratio"),
        patch_size: int = 3,
        sigma: float = 4.0,
        projection_dim: int = 128,
        max_pool: int | None = 262_144,
        reweight_neighbours: int = default(AnomalyConfig, "reweight_neighbours"),
        **common: Any,
    ) -> None:
        super().__init__(backbone, image_size, **common)
        if not 0.0 < coreset_ratio <= 1.0:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
        if reweight_neighbours < 0:
            raise ValueError(f"reweight_neighbours must be >= 0, got {reweight_neighbours}")
        if reweight_neighbours and self.top_fraction:
            raise ValueError(
                "reweight_neighbours re-weights the highest patch score: set top_fraction to None (0 on the "
                "command line)"
            )
        if max_pool is not None and max_pool < 1:
            raise ValueError(f"max_pool must be >= 1 or None, got {max_pool}")
        self.coreset_ratio = coreset_ratio
        self.patch_size = patch_size
        self.sigma = sigma
        self.projection_dim = projection_dim
        self.max_pool = max_pool
        self.reweight_neighbours = reweight_neighbours

    @classmethod
    def reference(
        cls, backbone: str = "efficientnet_lite0", image_size: tuple[int, int] = (256, 256), **common: Any
    ) -> PatchCore:
        """The paper's method (Roth et al. 2022): locally aware 3x3 patch features, a greedy coreset of
        10 % of every training patch (no random pre-subsampling), image score = the highest patch
        score re-weighted over its nearest bank entry's 9 neighbours (eq. 7; b = 9 as in the
        authors' code)."""
        return cls(
            backbone,
            image_size,
            coreset_ratio=0.10,
            patch_size=3,
            max_pool=None,
            reweight_neighbours=9,
            top_fraction=None,
            **common,
        )

    def _model_config(self) -> dict[str, Any]:
        return {
            "coreset_ratio": self.coreset_ratio,
            "patch_size": self.patch_size,
            "sigma": self.sigma,
            "projection_dim": self.projection_dim,
            "max_pool": self.max_pool,
            "reweight_neighbours": self.reweight_neighbours,
        }

    def _build_module(
        self, pretrained: bool, state: dict[str, torch.Tensor] | None = None
    ) -> PatchCoreModule:
        bank_size = int(state["memory_bank"].shape[0]) if state is not None else 1
        backbone = create_backbone(self.backbone, pretrained=pretrained)
        top_k = self.network_top_k
        module = PatchCoreModule(
            backbone, self.image_size, bank_size, self.patch_size, self.sigma, top_k, self.reweight_neighbours
        )
        return module.to(self.device).eval()

    def _fit_module(self, images: Iterable[np.ndarray], total: int | None, progress: bool) -> None:
        module = self._build_module(pretrained=True)
        gen = torch.Generator().manual_seed(self.seed)
        chunks: list[torch.Tensor] = []
        n_patches = 0
        keep_fraction = 1.0
        for emb in self._embed(images, total, progress, module.embedding):
            _n, c, h, w = emb.shape
            feats = emb.permute(0, 2, 3, 1).reshape(-1, c).float().cpu()
            n_patches += feats.shape[0]
            per_image = h * w * (len(self.tiling.origins) if self.tiling else 1)
            if self.max_pool and total and keep_fraction == 1.0 and total * per_image > self.max_pool:
                # Subsample while collecting, so memory stays near max_pool rows.
                keep_fraction = self.max_pool / (total * per_image)
            if keep_fraction < 1.0:
                keep = torch.randperm(feats.shape[0], generator=gen)
                feats = feats[keep[: max(1, round(feats.shape[0] * keep_fraction))]]
            chunks.append(feats)
        if not chunks:
            raise ValueError("PatchCore.fit got no images")
        pool = torch.cat(chunks)
        if self.max_pool and pool.shape[0] > self.max_pool:  # total was unknown: subsample now
            pool = pool[torch.randperm(pool.shape[0], generator=gen)[: self.max_pool]]
        n_select = min(pool.shape[0], max(1, math.ceil(self.coreset_ratio * n_patches)))
        index = greedy_coreset(
            pool.to(self.device),
            n_select,
            projection_dim=self.projection_dim,
            seed=self.seed,
            progress=progress,
        )
        module.set_memory_bank(pool[index.cpu()].to(self.device))
        self.module = module.eval()
        self.metadata.update(
            {
                "n_train_patches": n_patches,
                "pool_size": int(pool.shape[0]),
                "memory_bank_size": int(n_select),
                "embedding_dim": int(pool.shape[1]),
            }
        )
