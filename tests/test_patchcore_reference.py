"""The paper-faithful PatchCore option set against an independent brute-force NumPy version."""

import numpy as np
import pytest
import torch

from lineguard.models import PatchCore

SIZE = (64, 64)


def brute_force_coreset(x: np.ndarray, n_select: int, start: int) -> list[int]:
    """Greedy k-center in float64 with explicit pairwise distances (no projection, no tricks)."""
    chosen = [start]
    min_d = np.linalg.norm(x - x[start], axis=1)
    while len(chosen) < n_select:
        nxt = int(np.argmax(min_d))
        chosen.append(nxt)
        min_d = np.minimum(min_d, np.linalg.norm(x - x[nxt], axis=1))
    return chosen


def brute_force_score(patches: np.ndarray, bank: np.ndarray, b: int) -> float:
    """Eq. 7 of Roth et al. (2022), literally: exp, not softmax."""
    d = np.linalg.norm(patches[:, None, :] - bank[None, :, :], axis=2)  # (P, B)
    nearest = d.min(axis=1)
    p = int(np.argmax(nearest))
    s_star = nearest[p]
    m_star = int(np.argmin(d[p]))
    support = np.argsort(np.linalg.norm(bank - bank[m_star], axis=1), kind="stable")[:b]
    weight = 1.0 - np.exp(d[p, m_star]) / np.exp(d[p, support]).sum()
    return float(weight * s_star)


@pytest.fixture(scope="module")
def reference_fit(parts):
    import cv2

    good = [cv2.resize(im, SIZE[::-1], interpolation=cv2.INTER_AREA) for im in parts["good"][:4]]
    model = PatchCore.reference("efficientnet_lite0", SIZE, projection_dim=None, seed=0)
    model.fit(good)
    return model, good


def test_reference_option_set_is_the_papers(reference_fit):
    model, _ = reference_fit
    assert model.coreset_ratio == 0.10 and model.max_pool is None and model.patch_size == 3
    assert model.reweight_neighbours == 9 and model.top_fraction is None


def test_reference_coreset_matches_brute_force(reference_fit):
    model, good = reference_fit
    with torch.inference_mode():
        x = torch.from_numpy(model.network_inputs(good))
        emb = model.module.embedding(x)
    feats = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).double().numpy()
    bank = model.module.memory_bank.double().numpy()
    assert bank.shape[0] == int(np.ceil(0.10 * feats.shape[0]))
    # every bank row is a training patch; the first one fixes the greedy start
    start = int(np.argmin(np.linalg.norm(feats - bank[0], axis=1)))
    expected = feats[brute_force_coreset(feats, bank.shape[0], start)]
    np.testing.assert_allclose(bank, expected, rtol=1e-5, atol=1e-4)


def test_reference_scores_match_brute_force(reference_fit, parts):
    import cv2

    model, _ = reference_fit
    tests = [
        cv2.resize(im, SIZE[::-1], interpolation=cv2.INTER_AREA)
        for im in parts["test_good"][:2] + parts["defect"][:3]
    ]
    scores = model.predict(tests).scores
    bank = model.module.memory_bank.double().numpy()
    with torch.inference_mode():
        emb = model.module.embedding(torch.from_numpy(model.network_inputs(tests)))
    expected = [
        brute_force_score(e.permute(1, 2, 0).reshape(-1, e.shape[0]).double().numpy(), bank, 9) for e in emb
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    # re-weighting is not the identity: some weights are clearly below 1
    highest = [
        np.linalg.norm(e.permute(1, 2, 0).reshape(-1, 1, e.shape[0]).double().numpy() - bank[None], axis=2)
        .min(axis=1)
        .max()
        for e in emb
    ]
    assert np.any(scores < 0.999 * np.asarray(highest))


def test_reweighting_needs_the_highest_patch_score():
    with pytest.raises(ValueError, match="top_fraction"):
        PatchCore("efficientnet_lite0", SIZE, reweight_neighbours=9, top_fraction=0.01)
