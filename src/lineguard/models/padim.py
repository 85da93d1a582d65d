"""PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework", 2021).

One multivariate Gaussian per feature-map position, fitted on good parts; the
anomaly score of a patch is its Mahalanobis distance to its position's Gaussian.
Because positions are modelled separately, PaDiM suits aligned parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from lineguard.backbones import create_backbone
from lineguard.backbones.registry import FeatureExtractor
from lineguard.models.base import AnomalyModel
from lineguard.models.layers import AnomalyMapHead, ImageScore, PatchEmbedding


def batched_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of each (D, D) matrix in a (P, D, D) stack.

    Through NumPy's LAPACK loop, not ``torch.linalg.inv``: on CPU, torch runs MKL's threaded LU
    inside its own parallel loop over the stack, and from about D = 130 (PaDiM with more than the
    default 100 features) the nested threads contend so badly that inverting the 2,560 covariances
    of a KolektorSDD model took minutes instead of a second."""
    inverse = np.linalg.inv(matrices.detach().cpu().numpy())
    return torch.from_numpy(inverse).to(device=matrices.device, dtype=matrices.dtype)


class PadimModule(nn.Module):
    channel_index: torch.Tensor
    mean: torch.Tensor
    inv_cov: torch.Tensor

    def __init__(
        self,
        backbone: FeatureExtractor,
        image_size: tuple[int, int],
        n_features: int,
        n_positions: int,
        sigma: float = 4.0,
        top_k: int = 0,
        patch_size: int = 1,
    ) -> None:
        super().__init__()
        self.embedding = PatchEmbedding(backbone, patch_size=patch_size)
        self.score = ImageScore(top_k)
        self.register_buffer("channel_index", torch.arange(n_features))
        self.register_buffer("mean", torch.zeros(n_positions, n_features))
        self.register_buffer("inv_cov", torch.zeros(n_positions, n_features, n_features))
        self.head = AnomalyMapHead(image_size, sigma)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, P, D) selected features per position."""
        emb = self.embedding(x).index_select(1, self.channel_index)
        n, d, h, w = emb.shape
        return emb.reshape(n, d, h * w).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embedding(x)
        h, w = emb.shape[-2:]
        feats = emb.index_select(1, self.channel_index).flatten(2).transpose(1, 2)
        delta = (feats - self.mean[None]).transpose(0, 1)  # (P, N, D)
        m2 = ((delta @ self.inv_cov) * delta).sum(dim=2)  # (P, N)
        grid = m2.clamp_min(0.0).sqrt().transpose(0, 1).reshape(-1, h, w)
        amap = self.head(grid)
        return self.score(grid, amap), amap


class Padim(AnomalyModel):
    kind = "padim"

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: tuple[int, int] = (256, 256),
        *,
        n_features: int = 100,
        regularization: float = 0.01,
        # 3x3 locally aware features (as PatchCore's) rather than the paper's plain ones: chosen by
        # the multi-dataset rule of bench/anomaly_protocol.py (docs/benchmarks.md).
        patch_size: int = 3,
        sigma: float = 4.0,
        **common: Any,
    ) -> None:
        super().__init__(backbone, image_size, **common)
        if self.tiling is not None:
            # One Gaussian per position would need one set per tile; not supported yet.
            raise ValueError("tiling needs a position-free model: use patchcore")
        self.n_features = n_features
        self.regularization = regularization
        self.patch_size = patch_size
        self.sigma = sigma

    def _model_config(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "regularization": self.regularization,
            "patch_size": self.patch_size,
            "sigma": self.sigma,
        }

    def _build_module(self, pretrained: bool, state: dict[str, torch.Tensor] | None = None) -> PadimModule:
        backbone = create_backbone(self.backbone, pretrained=pretrained)
        total = sum(backbone.channels)
        if state is not None:
            n_positions, n_features = (int(v) for v in state["mean"].shape)
        else:
            n_features = min(self.n_features, total)
            with torch.inference_mode():  # the stride-8 grid size, whatever the padding rules
                probe = PatchEmbedding(backbone, self.patch_size)(torch.zeros(1, 3, *self.image_size))
            n_positions = int(probe.shape[-2] * probe.shape[-1])
        top_k = self.network_top_k
        module = PadimModule(
            backbone, self.image_size, n_features, n_positions, self.sigma, top_k, self.patch_size
        )
        return module.to(self.device).eval()

    def _fit_module(self, images: Iterable[np.ndarray], total: int | None, progress: bool) -> None:
        module = self._build_module(pretrained=True)
        n_total = module.embedding.channels
        n_feat = module.channel_index.numel()
        gen = torch.Generator().manual_seed(self.seed)
        index = torch.randperm(n_total, generator=gen)[:n_feat].sort().values
        module.channel_index = index.to(self.device)
        # Running sums in float64: the covariance is E[xx^T] - mu mu^T, which
        # loses precision in float32 when features are large.
        count = 0
        s1: torch.Tensor | None = None
        s2: torch.Tensor | None = None
        with torch.inference_mode():
            for batch_feats in self._embed(images, total, progress, module.features):
                f = batch_feats.double()
                if s1 is None or s2 is None:
                    s1 = torch.zeros(f.shape[1:], dtype=torch.float64, device=f.device)
                    s2 = torch.zeros(f.shape[1], f.shape[2], f.shape[2], dtype=torch.float64, device=f.device)
                s1 += f.sum(dim=0)
                s2 += torch.einsum("npi,npj->pij", f, f)
                count += f.shape[0]
        if count < 2 or s1 is None or s2 is None:
            raise ValueError(f"PaDiM needs at least 2 good images, got {count}")
        mean = s1 / count
        cov = (s2 - count * mean[:, :, None] * mean[:, None, :]) / (count - 1)
        cov += self.regularization * torch.eye(n_feat, dtype=torch.float64, device=cov.device)
        module.mean = mean.float()
        module.inv_cov = batched_inverse(cov).float()
        self.module = module.eval()
        self.metadata.update(
            {"n_train_images": count, "n_features": n_feat, "n_positions": int(mean.shape[0])}
        )
