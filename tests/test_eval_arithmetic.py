"""The cheaper arithmetic of an evaluation pass gives the same numbers: the fmnist network arranged for
inference, KID and precision/recall in cache-sized tiles, freed memory kept for reuse.
Each check is against the unchanged computation (the trained network as it trains, torch.cdist,
torch-fidelity, float64), never against a stored number."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.data.sampler import load_labelled
from ganbench.metrics.classifier import PairMax, load_classifier
from ganbench.process_cache import PROCESS


@pytest.mark.parametrize("height, width", [(28, 28), (14, 14), (7, 7), (9, 6)])
def test_pair_max_is_max_pool_2x2_exactly(height, width):
    x = torch.randn(3, 5, height, width)
    assert torch.equal(PairMax()(x), nn.MaxPool2d(2)(x))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(PairMax()(channels_last), nn.MaxPool2d(2)(x))


def test_the_inference_arrangement_keeps_the_trained_networks_features():
    """Pools before ReLUs as element-wise maxima change no bit; folded batch norms and channels-last weights
    move features and logits by float32 rounding only (≤ 2e-6 of their largest value, every predicted class
    the same); the network itself is untouched."""
    from ganbench.metrics.classifier import FMNIST_MEAN, FMNIST_STD, _pool_before_relu

    net = load_classifier()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    arranged = net.for_inference()
    images = load_labelled("fashion-mnist", "test")[0][:600].float() / 255
    pools_moved = nn.Sequential(*_pool_before_relu(list(net.eval().body)))
    with torch.no_grad():
        (features, logits), (fast_features, fast_logits) = net(images), arranged(images)
        assert torch.equal(pools_moved((images - FMNIST_MEAN) / FMNIST_STD), features)
    assert (fast_features - features).abs().max() <= 2e-6 * features.abs().max()
    assert (fast_logits - logits).abs().max() <= 2e-6 * logits.abs().max()
    assert torch.equal(fast_logits.argmax(1), logits.argmax(1))
    assert not any(isinstance(m, (nn.MaxPool2d, nn.BatchNorm2d, nn.BatchNorm1d)) for m in arranged.modules())
    assert all(torch.equal(before[name], value) for name, value in net.state_dict().items())


def _kid_float64(generated, real, settings):
    rng = np.random.RandomState(settings.seed)
    x_all, y_all, m = generated.double().numpy(), real.double().numpy(), settings.size
    mmds = []
    for _ in range(settings.subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        k_xx, k_yy, k_xy = ((a @ b.T / x.shape[1] + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        mmds.append((k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)) - 2 * k_xy.sum() / m**2)
    return float(np.mean(mmds)), float(np.std(mmds))


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.4])
def test_kid_in_tiles_across_their_edges_equals_float64(shift):
    """Sizes that are not multiples of the tiles (1 300 generated: two 512-row tiles and a partial one;
    2 100 reference: two 1 024-column tiles and a partial one), at KID ≈ 4e-7 (one law: there the float32
    tiles are 8e-12 from float64, which is 2e-5 relative), near 0 (1.5e-4) and far from it; the subset
    draw is kept per process and reused."""
    from ganbench.metrics.kid import KidSettings, kid

    g = torch.Generator().manual_seed(11)
    generated = torch.randn(1300, 64, generator=g).relu()
    real = (torch.randn(2100, 64, generator=g) + shift).relu()
    settings = KidSettings(subsets=12, size=400, seed=5)
    PROCESS.clear("kid_subsets")
    ours = kid(generated, real, settings)
    again = kid(generated, real, settings)
    exact, exact_std = _kid_float64(generated, real, settings)
    mean, std = ours["kernel_inception_distance_mean"], ours["kernel_inception_distance_std"]
    tolerance = 1e-10 if shift == 0 else 1e-6 * abs(exact)
    assert abs(mean - exact) <= tolerance and abs(std - exact_std) <= max(tolerance, 1e-6 * exact_std)
    assert ours == again and PROCESS.entries("kid_subsets") == 1


def test_distance_tiles_are_bit_for_bit_torch_cdist():
    from ganbench.metrics.prc import TILE_COLUMNS, TILE_ROWS, _distances, _operands

    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1200, 40, generator=g).relu(), torch.randn(1100, 40, generator=g).relu()
    whole = torch.cdist(a, b)
    left, _ = _operands(a)
    _, right = _operands(b)
    for first_row in range(0, len(a), TILE_ROWS):
        for first_column in range(0, len(b), TILE_COLUMNS):
            rows, columns = left[first_row:first_row + TILE_ROWS], right[first_column:first_column + TILE_COLUMNS]
            tile = _distances(rows, columns, torch.empty(len(rows), len(columns)))
            assert torch.equal(tile, whole[first_row:first_row + TILE_ROWS, first_column:first_column + TILE_COLUMNS])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.parametrize("keep", ["1", "0"])
def test_freed_memory_is_reused_instead_of_page_faulted_again(keep):
    """64 MB tensors made and freed one after another: with the setting, once the heap has settled (a few
    tensors), the pages of one serve the next (no page faults); with GANBENCH_KEEP_FREED_MEMORY=0, each new
    tensor faults its 16 384 pages in again, as glibc does by default."""
    probe = textwrap.dedent("""
        import resource, torch
        from ganbench.memory_reuse import keep_freed_memory
        applied = keep_freed_memory()
        for _ in range(10):  # the heap settles (glibc grows it over the first few)
            torch.ones(16 << 20)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            torch.ones(16 << 20)  # 64 MB, freed at once
        print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "GANBENCH_KEEP_FREED_MEMORY": keep,
                               "PYTHONPATH": ":".join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    applied, faults = done.stdout.split()
    if keep == "0":
        assert applied == "False" and int(faults) >= 20 * 10_000
    elif applied == "True":  # glibc
        assert int(faults) < 20 * 1_000
    else:
        pytest.skip("this C library has no mallopt")
