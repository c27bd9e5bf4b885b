"""Image features behind the planted brain: oriented energy (fine scale) and mid-level structure.

All maps live on a 32x32 grid covering the image, with visual-field coordinates x (left -1 .. right +1)
and y (bottom -1 .. top +1); image row 0 is the top (y = +1).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: orientations of the oriented-energy channels, in degrees: the carrier varies along this direction
ORIENTATIONS_DEG = (0.0, 45.0, 90.0, 135.0)
MAP_SIZE = 32


def _gabor_bank(n: int, wavelength: float, sigma: float) -> np.ndarray:
    """FFTs of complex Gabor filters, shape (4, n, n), zero DC."""
    yy, xx = np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    env = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    out = []
    for deg in ORIENTATIONS_DEG:
        t = np.deg2rad(deg)
        carrier = np.exp(1j * 2 * np.pi / wavelength * (xx * np.cos(t) + yy * np.sin(t)))
        g = env * carrier
        g = g - env * (g.sum() / env.sum())  # remove DC
        g /= np.abs(g).sum()
        out.append(np.fft.fft2(np.fft.ifftshift(g)))
    return np.stack(out)


_BANK_FINE = _gabor_bank(64, wavelength=5.0, sigma=2.5)
_BANK_COARSE = _gabor_bank(32, wavelength=6.0, sigma=3.0)


def _gray64(image: np.ndarray) -> np.ndarray:
    g = np.asarray(Image.fromarray(image).convert("L").resize((64, 64), Image.BOX), dtype=np.float64) / 255.0
    return (g - g.mean()) / (g.mean() + 0.1)  # contrast units


def _energy(gray: np.ndarray, bank: np.ndarray) -> np.ndarray:
    f = np.fft.fft2(gray)
    return np.abs(np.fft.ifft2(f[None] * bank))


def image_features(image: np.ndarray) -> dict:
    """Feature maps of one RGB image.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 (H, W, 3).

    Returns
    -------
    dict
        ``energy``: float32 (4, 32, 32) fine-scale oriented energy (wavelength ~13 cycles/image) per
        orientation in :data:`ORIENTATIONS_DEG`; ``mid``: float32 (2, 32, 32) coarse-scale
        [junction/corner energy, orientation dispersion (curvature/texture)]; ``contrast_lr``: float32 (2,)
        mean fine energy in the left and right visual hemifields.
    """
    g64 = _gray64(image)
    fine = _energy(g64, _BANK_FINE)  # (4,64,64)
    fine = fine.reshape(4, 32, 2, 32, 2).mean(axis=(2, 4))
    coarse = _energy(g64.reshape(32, 2, 32, 2).mean(axis=(1, 3)), _BANK_COARSE)  # (4,32,32)
    junction = np.sqrt(coarse[0] * coarse[2]) + np.sqrt(coarse[1] * coarse[3])
    phases = np.exp(2j * np.deg2rad(np.array(ORIENTATIONS_DEG)))[:, None, None]
    dispersion = coarse.sum(0) - np.abs((coarse * phases).sum(0))
    return {
        "energy": fine.astype(np.float32),
        "mid": np.stack([junction, dispersion]).astype(np.float32),
        "contrast_lr": np.array([fine[:, :, :16].mean(), fine[:, :, 16:].mean()], np.float32),
    }


def stack_features(feature_dicts) -> dict:
    """Stack per-image feature dicts into arrays with a leading image axis."""
    keys = ("energy", "mid", "contrast_lr")
    return {k: np.stack([f[k] for f in feature_dicts]) for k in keys}


def field_coordinates() -> tuple[np.ndarray, np.ndarray]:
    """Visual-field coordinates (x, y) of the 32x32 map pixels, each float64 (32*32,), row-major."""
    c = (np.arange(MAP_SIZE) + 0.5) / MAP_SIZE * 2 - 1
    yy, xx = np.meshgrid(-c, c, indexing="ij")
    return xx.ravel(), yy.ravel()


def prf_weights(x0, y0, sigma) -> np.ndarray:
    """Gaussian population receptive fields sampled on the feature grid.

    Parameters
    ----------
    x0, y0, sigma : array_like (n_voxels,)
        pRF centres and sizes in visual-field units (image spans -1..1).

    Returns
    -------
    numpy.ndarray
        float32 (n_voxels, 1024), each row summing to the fraction of the Gaussian inside the image
        (normalised by the full Gaussian's mass on an unbounded grid).
    """
    xs, ys = field_coordinates()
    x0, y0, sigma = (np.asarray(a, float)[:, None] for a in (x0, y0, sigma))
    g = np.exp(-((xs[None] - x0) ** 2 + (ys[None] - y0) ** 2) / (2 * sigma**2))
    pix_area = (2 / MAP_SIZE) ** 2
    g *= pix_area / (2 * np.pi * sigma**2)
    return g.astype(np.float32)
