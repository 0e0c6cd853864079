"""PSNR and SSIM against direct numpy computations (Wang et al. 2004: 11x11 Gaussian window,
sigma 1.5, K1 0.01, K2 0.03, range 255, 'valid' windows, mean over positions and channels)."""

import numpy as np
from robolearn.world_models import metrics


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """A slow, literal SSIM: every 11x11 window weighted by the 2-D Gaussian, per channel."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    values = []
    h, wd, ch = a.shape
    for c in range(ch):
        for i in range(h - 10):
            for j in range(wd - 10):
                pa, pb = a[i : i + 11, j : j + 11, c], b[i : i + 11, j : j + 11, c]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va = (w * pa * pa).sum() - ma**2
                vb = (w * pb * pb).sum() - mb**2
                cov = (w * pa * pb).sum() - ma * mb
                values.append(
                    ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
    return float(np.mean(values))


def test_ssim_matches_the_literal_definition():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 18, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(float(metrics.ssim(a, b)), _ssim_reference(a, b), rtol=1e-4)
    np.testing.assert_allclose(float(metrics.ssim(a, a)), 1.0, rtol=1e-6)


def test_ssim_and_psnr_keep_leading_axes_and_rank_noise():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    mild = np.clip(real + rng.normal(0, 5, real.shape), 0, 255).astype(np.uint8)
    strong = np.clip(real + rng.normal(0, 40, real.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(real, mild).shape == (2, 3) and metrics.psnr(real, mild).shape == (2, 3)
    assert np.all(metrics.ssim(real, mild) > metrics.ssim(real, strong))
    assert np.all(metrics.psnr(real, mild) > metrics.psnr(real, strong))


def test_psnr_by_hand_and_capped_for_identical_frames():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)  # MSE 100 -> 10 log10(65025 / 100) = 28.13 dB
    np.testing.assert_allclose(float(metrics.psnr(a, b)), 10 * np.log10(255**2 / 100), rtol=1e-6)
    assert float(metrics.psnr(a, a)) == metrics.PSNR_CAP
    np.testing.assert_allclose(float(metrics.psnr_from_mse(100.0)), 28.1308, atol=1e-3)
