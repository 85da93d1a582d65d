import numpy as np
import torch
from scipy.spatial.distance import cdist

from lineguard.models.coreset import greedy_coreset
from lineguard.models.layers import nearest_distance


def brute_force_greedy(x: np.ndarray, n_select: int, start: int) -> list[int]:
    """Textbook k-center greedy: recompute every distance to the selection each step."""
    selected = [start]
    for _ in range(n_select - 1):
        d = cdist(x, x[selected]).min(axis=1)
        selected.append(int(np.argmax(d)))
    return selected


def start_index(n: int, seed: int) -> int:
    gen = torch.Generator().manual_seed(seed)
    return int(torch.randint(n, (1,), generator=gen))


def test_greedy_coreset_matches_brute_force_without_projection():
    x = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float64)
    got = greedy_coreset(torch.from_numpy(x), 25, projection_dim=None, seed=5).tolist()
    assert got == brute_force_greedy(x, 25, start_index(300, 5))


def test_projected_coreset_still_covers_the_data():
    # Clusters of very different sizes: a good coreset must visit every one,
    # including the rare ones (the rare defect-free variants of a real part).
    rng = np.random.default_rng(1)
    sizes = [400] * 4 + [5] * 30
    centres = rng.normal(0, 10, (len(sizes), 256))
    x = np.concatenate([c + rng.normal(0, 1, (k, 256)) for c, k in zip(centres, sizes, strict=True)])
    x = x.astype(np.float32)
    n = 60
    projected = greedy_coreset(torch.from_numpy(x), n, projection_dim=128, seed=0).numpy()
    random_pick = rng.choice(len(x), n, replace=False)
    radius = cdist(x, x[projected]).min(axis=1).max()
    random_radius = cdist(x, x[random_pick]).min(axis=1).max()
    exact = cdist(x, x[brute_force_greedy(x.astype(np.float64), n, start_index(2000, 0))]).min(axis=1).max()
    assert len(set(projected.tolist())) == n
    assert radius < random_radius  # better coverage than chance
    assert radius <= 1.15 * exact  # and close to the exact greedy radius


def test_coreset_keeps_everything_when_asked_for_more():
    x = torch.randn(10, 4)
    assert greedy_coreset(x, 50).tolist() == list(range(10))


def test_coreset_is_deterministic():
    x = torch.randn(500, 32)
    assert torch.equal(greedy_coreset(x, 40, seed=7), greedy_coreset(x, 40, seed=7))


def test_nearest_distance_matches_brute_force():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(400, 64)).astype(np.float32)
    bank = rng.normal(size=(900, 64)).astype(np.float32)
    q[:5] = bank[:5]  # exact matches must give distance 0, not NaN
    got = nearest_distance(
        torch.from_numpy(q), torch.from_numpy(bank), torch.from_numpy((bank**2).sum(1))
    ).numpy()
    want = cdist(q.astype(np.float64), bank.astype(np.float64)).min(axis=1)
    # The matrix-product form loses absolute precision near 0 in float32
    # (sqrt of a cancellation error ~1e-5): tiny next to any anomaly score.
    np.testing.assert_allclose(got[:5], 0.0, atol=1e-2)
    np.testing.assert_allclose(got[5:], want[5:], rtol=1e-4)
    assert np.all(np.isfinite(got))


def test_the_eager_search_in_blocks_gives_the_one_shot_answer(monkeypatch):
    import lineguard.models.layers as layers

    rng = np.random.default_rng(3)
    q = torch.from_numpy(rng.normal(size=(1000, 32)).astype(np.float32))
    bank = torch.from_numpy(rng.normal(size=(300, 32)).astype(np.float32))
    norms = (bank * bank).sum(1)
    whole = layers.nearest_neighbour(q, bank, norms)
    monkeypatch.setattr(layers, "SEARCH_BLOCK_ELEMENTS", 300 * 64)  # blocks of 64 queries, ragged tail
    blocked = layers.nearest_neighbour(q, bank, norms)
    assert torch.equal(blocked[1], whole[1])
    torch.testing.assert_close(blocked[0], whole[0], rtol=1e-6, atol=1e-6)
