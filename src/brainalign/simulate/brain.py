"""The planted brain: spatial layout of areas on a voxel grid, voxel roles and response model.

Layout lives in "unit-ellipsoid" coordinates (cx, cy, cz) in [-1, 1]: cx left(-)/right(+), cy posterior(-)/
anterior(+), cz inferior(-)/superior(+) (RAS, matching an affine diag(res) with origin at the grid centre).
The brain is the ellipsoid ``r <= 1``; cortex is the shell ``0.55 <= r <= 1``. Early visual areas (V1-V3)
occupy the posterior pole (cy < -0.5), hV4 sits just anterior and ventral, category-selective blobs lie on
the ventral / lateral surface, and ``nsdgeneral`` covers posterior cortex (cy < 0.25, cz < 0.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .features import ORIENTATIONS_DEG, prf_weights
from .images import CATEGORIES

#: NSD atlases written by the simulator: stem -> label names 1..N (datasets.md §1.9)
NSD_ATLASES = {
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-words": ["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
    "streams": ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"],
    "nsdgeneral": ["nsdgeneral"],
}

#: category blobs, left-hemisphere centres in unit-ellipsoid coordinates (mirrored for rh) and radius.
#: (atlas, label, category, (cx, cy, cz), radius). Atlas None = not in any NSD floc atlas (object-selective LO).
BLOBS = [
    ("floc-faces", "OFA", "faces", (-0.75, -0.42, -0.30), 0.24),
    ("floc-faces", "FFA-1", "faces", (-0.45, -0.15, -0.80), 0.24),
    ("floc-faces", "FFA-2", "faces", (-0.45, 0.12, -0.80), 0.22),
    ("floc-faces", "mTL-faces", "faces", (-0.40, 0.40, -0.75), 0.2),
    ("floc-faces", "aTL-faces", "faces", (-0.45, 0.70, -0.50), 0.2),
    ("floc-bodies", "EBA", "bodies", (-0.92, -0.20, 0.10), 0.26),
    ("floc-bodies", "FBA-1", "bodies", (-0.85, 0.02, -0.35), 0.22),
    ("floc-bodies", "FBA-2", "bodies", (-0.85, 0.25, -0.25), 0.2),
    ("floc-bodies", "mTL-bodies", "bodies", (-0.80, 0.50, -0.10), 0.2),
    ("floc-places", "OPA", "places", (-0.70, -0.40, 0.55), 0.26),
    ("floc-places", "PPA", "places", (-0.15, -0.05, -0.85), 0.26),
    ("floc-places", "RSC", "places", (-0.12, -0.30, 0.60), 0.24),
    ("floc-words", "OWFA", "words", (-0.78, -0.40, -0.55), 0.2),
    ("floc-words", "VWFA-1", "words", (-0.70, -0.12, -0.62), 0.22),
    ("floc-words", "VWFA-2", "words", (-0.70, 0.15, -0.60), 0.2),
    ("floc-words", "mfs-words", "words", (-0.60, 0.35, -0.55), 0.18),
    ("floc-words", "mTL-words", "words", (-0.55, 0.60, -0.45), 0.18),
    (None, "LO", "objects", (-0.95, -0.45, -0.05), 0.26),
]

#: voxel roles (integer code = index): no signal, V1-V3 oriented energy, hV4/LO-like mid-level structure,
#: other visual cortex (mixture), then one category-selective role per category
ROLES = ("none", "early", "mid", "general") + tuple(f"category-{c}" for c in CATEGORIES)

SHELL_INNER = 0.55
SHELL_MID = 0.78


@dataclass
class Layout:
    """Voxel-grid layout of one subject (all arrays over the full grid, shape (X, Y, Z))."""

    shape: tuple
    brain: np.ndarray  # bool
    cortex: np.ndarray  # bool
    left: np.ndarray  # bool, left hemisphere (cx < 0)
    atlases: dict = field(default_factory=dict)  # stem -> int16 labels 0..N (0 = none), non-cortex 0
    blob_category: np.ndarray = None  # int8, category index of the blob (-1 none)
    blob_name: np.ndarray = None  # int16 index into BLOBS (-1 none)
    coords: tuple = None  # (cx, cy, cz) float32 arrays


def _unit_coords(shape):
    X, Y, Z = shape
    i, j, k = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    cx = ((i + 0.5) / X - 0.5) / 0.45
    cy = ((j + 0.5) / Y - 0.5) / 0.46
    cz = ((k + 0.5) / Z - 0.5) / 0.42
    return cx.astype(np.float32), cy.astype(np.float32), cz.astype(np.float32)


def build_layout(shape) -> Layout:
    """Deterministic anatomy for a grid: brain, cortex, hemispheres, NSD atlases and category blobs.

    Parameters
    ----------
    shape : tuple of int
        Grid (X, Y, Z).
    """
    cx, cy, cz = _unit_coords(shape)
    r = np.sqrt(cx**2 + cy**2 + cz**2)
    brain = r <= 1.0
    cortex = brain & (r >= SHELL_INNER)
    left = cx < 0
    lay = Layout(shape=tuple(shape), brain=brain, cortex=cortex, left=left, coords=(cx, cy, cz))

    # category blobs: nearest covering blob wins; restricted to cortex anterior to the early areas
    best = np.full(shape, np.inf, np.float32)
    blob_name = np.full(shape, -1, np.int16)
    eligible = cortex & (cy >= -0.5)
    for b, (_atlas, _label, cat, centre, radius) in enumerate(BLOBS):
        c = np.array(centre, float)
        c = c / np.linalg.norm(c) * SHELL_MID
        rad = radius * (0.75 if cat == "words" else 1.0)
        for sign, hemi in ((1, left), (-1, ~left)):
            rh_rad = rad if (sign == 1 or cat != "words") else rad * 0.8
            d = np.sqrt((cx - sign * c[0]) ** 2 + (cy - c[1]) ** 2 + (cz - c[2]) ** 2) / rh_rad
            take = eligible & hemi & (d < 1) & (d < best)
            best[take] = d[take]
            blob_name[take] = b
    lay.blob_name = blob_name
    cat_index = np.array([CATEGORIES.index(b[2]) for b in BLOBS], np.int8)
    lay.blob_category = np.where(blob_name >= 0, cat_index[np.maximum(blob_name, 0)], -1).astype(np.int8)

    # prf-visualrois: V1-V3 by posterior bands, d/v by height; hV4 just anterior & ventral
    prf = np.zeros(shape, np.int16)
    ventral = cz < 0
    for area, (lo, hi) in enumerate([(-9, -0.80), (-0.80, -0.65), (-0.65, -0.50)]):
        band = cortex & (cy >= lo) & (cy < hi)
        prf[band & ventral] = 2 * area + 1
        prf[band & ~ventral] = 2 * area + 2
    hv4 = cortex & (cy >= -0.5) & (cy < -0.3) & (cz < -0.2) & (blob_name < 0)
    prf[hv4] = 7
    lay.atlases["prf-visualrois"] = prf

    for stem in ("floc-faces", "floc-bodies", "floc-places", "floc-words"):
        vol = np.zeros(shape, np.int16)
        names = NSD_ATLASES[stem]
        for b, (atlas, label, *_rest) in enumerate(BLOBS):
            if atlas == stem:
                vol[blob_name == b] = names.index(label) + 1
        lay.atlases[stem] = vol

    lateral = np.abs(cx) > 0.6
    streams = np.zeros(shape, np.int16)
    streams[(prf >= 1) & (prf <= 6)] = 1
    for lo, hi, off in ((-0.5, -0.1, 1), (-0.1, 0.3, 4)):
        band = cortex & (cy >= lo) & (cy < hi) & (streams == 0)
        streams[band & (cz < -0.3)] = off + 1  # (mid)ventral
        streams[band & (cz >= -0.3) & lateral & (streams == 0)] = off + 2  # (mid)lateral
        streams[band & (cz > 0.3) & (streams == 0)] = off + 3  # (mid)parietal
    lay.atlases["streams"] = streams

    nsdgeneral = cortex & (cy < 0.25) & (cz < 0.7)
    lay.atlases["nsdgeneral"] = nsdgeneral.astype(np.int16)
    return lay


def roi_volume(layout: Layout, stem: str, hemi: str | None = None) -> np.ndarray:
    """An NSD-style ROI volume: -1 non-cortical (or other hemisphere), 0 unlabelled cortex, 1..N labels.

    Parameters
    ----------
    hemi : None, "lh" or "rh"
        None for the combined file.
    """
    labels = layout.atlases[stem]
    inside = layout.cortex.copy()
    if hemi == "lh":
        inside &= layout.left
    elif hemi == "rh":
        inside &= ~layout.left
    return np.where(inside, labels, -1).astype(np.int16)


def mean_epi(layout: Layout) -> np.ndarray:
    """A mean EPI image of the grid, as NSD's ``mean.nii.gz`` (the background of brain maps): float32 (X, Y, Z),
    0 outside the brain, brighter cortex than white matter, dark ventricles near the centre and a smooth
    receive-coil shading (brighter posterior, where the visual cortex is)."""
    cx, cy, cz = layout.coords
    r = np.sqrt(cx**2 + cy**2 + cz**2)
    tissue = np.where(layout.cortex, 1000.0, 700.0) - 450.0 * (r < 0.22)
    shading = 1.0 - 0.15 * cy + 0.05 * cz
    return np.where(layout.brain, tissue * shading, 0.0).astype(np.float32)


def bold5000_masks(layout: Layout) -> dict:
    """BOLD5000-style overlapping ROI masks {"LHEarlyVis": bool (X,Y,Z), ...}.

    EarlyVis = V1-V3; LOC = the object-selective LO blob dilated by one voxel; OPA/PPA/RSC = the place
    blobs dilated by one voxel. Overlaps between masks are guaranteed (EarlyVis/LOC and OPA/RSC share voxels).
    """
    from scipy.ndimage import binary_dilation

    prf = layout.atlases["prf-visualrois"]
    places = layout.atlases["floc-places"]
    lo_index = [b[1] for b in BLOBS].index("LO")
    masks = {}
    for hemi, side in (("LH", layout.left), ("RH", ~layout.left)):
        ctx = layout.cortex & side
        early = (prf >= 1) & (prf <= 6) & side
        loc = binary_dilation(layout.blob_name == lo_index) & ctx
        opa = binary_dilation(places == 1) & ctx
        ppa = binary_dilation(places == 2) & ctx
        rsc = binary_dilation(places == 3) & ctx
        _ensure_overlap(loc, early)
        _ensure_overlap(rsc, opa)
        masks.update({f"{hemi}EarlyVis": early, f"{hemi}LOC": loc, f"{hemi}OPA": opa, f"{hemi}PPA": ppa, f"{hemi}RSC": rsc})
    return masks


def _ensure_overlap(a: np.ndarray, b: np.ndarray, n: int = 3) -> None:
    """Add to ``a`` (in place) the ``n`` voxels of ``b`` closest to ``a``'s centroid if they do not overlap."""
    if (a & b).any() or not a.any() or not b.any():
        return
    ca = np.argwhere(a).mean(0)
    pb = np.argwhere(b)
    near = pb[np.argsort(((pb - ca) ** 2).sum(1))[:n]]
    a[tuple(near.T)] = True


# --------------------------------------------------------------------------------------------------
# voxel parameters and responses


@dataclass
class VoxelModel:
    """Planted parameters of the ground-truth voxels of one subject (all arrays (n_voxels,) unless noted)."""

    ijk: np.ndarray  # int32 (n, 3)
    role: np.ndarray  # int8 index into ROLES
    prf_x: np.ndarray
    prf_y: np.ndarray
    prf_sigma: np.ndarray
    orientation: np.ndarray  # preferred orientation, degrees (early)
    tuning: np.ndarray  # weight of the oriented (vs untuned) energy (early)
    exponent: np.ndarray  # compressive exponent
    mid_mix: np.ndarray  # weight of junction vs dispersion energy (mid/general)
    weights: np.ndarray  # float32 (n, 4): [low-level, mid-level, category, within-category]
    category_tuning: np.ndarray  # float32 (n, 5): response to each category (category/general roles)
    ncsnr: np.ndarray
    noise_sd: np.ndarray  # percent signal change
    baseline: np.ndarray  # percent signal change


def make_voxel_model(layout: Layout, rng: np.random.Generator, n_control: int = 60) -> VoxelModel:
    """Draw the planted parameters of every signal voxel plus ``n_control`` no-signal control voxels.

    Signal voxels = nsdgeneral ∪ prf-visualrois ∪ category blobs. Control voxels are brain voxels
    outside all of those (role "none", ncsnr 0).
    """
    cx, cy, cz = layout.coords
    prf = layout.atlases["prf-visualrois"]
    signal = (layout.atlases["nsdgeneral"] > 0) | (prf > 0) | (layout.blob_name >= 0)
    sig_idx = np.argwhere(signal)
    others = np.argwhere(layout.brain & ~signal)
    ctrl = others[np.sort(rng.choice(len(others), size=min(n_control, len(others)), replace=False))] if len(others) else others
    ijk = np.concatenate([sig_idx, ctrl]).astype(np.int32)
    n = len(ijk)
    sel = tuple(ijk.T)
    role = np.full(n, ROLES.index("general"), np.int8)
    p = prf[sel]
    blob_cat = layout.blob_category[sel]
    role[(p >= 1) & (p <= 6)] = ROLES.index("early")
    role[p == 7] = ROLES.index("mid")
    lo = np.array([b[1] for b in BLOBS])[np.maximum(layout.blob_name[sel], 0)] == "LO"
    role[lo & (blob_cat >= 0)] = ROLES.index("category-objects")
    for c, cat in enumerate(CATEGORIES):
        role[(blob_cat == c)] = ROLES.index(f"category-{cat}")
    role[len(sig_idx):] = ROLES.index("none")

    vx, vy, vz = cx[sel].astype(float), cy[sel].astype(float), cz[sel].astype(float)
    contra = np.where(vx < 0, 1.0, -1.0)  # left hemisphere sees the right visual field
    # retinotopy of the early areas: eccentricity from distance to the pole axis, polar angle from height
    rho = np.sqrt(vx**2 + vz**2)
    ecc = np.clip(0.05 + 0.95 * rho / 0.85, 0.05, 1.0) * rng.uniform(0.85, 1.15, n)
    theta = np.arctan2(vz, np.abs(vx))  # -pi/2 (ventral) .. pi/2 (dorsal)
    prf_x = contra * ecc * np.cos(theta)
    prf_y = -ecc * np.sin(theta)  # ventral cortex -> upper visual field
    area_gain = np.select([(p == 1) | (p == 2), (p == 3) | (p == 4), (p == 5) | (p == 6), p == 7], [1.0, 1.4, 1.9, 2.8], 3.0)
    sigma = (0.06 + 0.18 * ecc) * area_gain * rng.uniform(0.8, 1.25, n)
    # non-early voxels: coarse contralateral fields near the centre
    is_early = role == ROLES.index("early")
    far = ~is_early
    prf_x[far] = contra[far] * rng.uniform(0.0, 0.5, far.sum())
    prf_y[far] = rng.uniform(-0.4, 0.4, far.sum())
    sigma[far] = np.clip(sigma[far], 0.35, 0.9)

    orientation = rng.choice(np.array(ORIENTATIONS_DEG), n)
    tuning = rng.uniform(0.4, 0.9, n)
    exponent = rng.uniform(0.4, 0.7, n)
    mid_mix = rng.uniform(0.2, 0.8, n)

    weights = np.zeros((n, 4), np.float32)  # low, mid, category, within-category
    cat_tuning = np.zeros((n, len(CATEGORIES)), np.float32)
    weights[is_early] = [1.0, 0.0, 0.0, 0.0]
    weights[role == ROLES.index("mid")] = [0.3, 1.0, 0.0, 0.0]
    gen = role == ROLES.index("general")
    weights[gen] = np.column_stack([rng.uniform(0.2, 1, gen.sum()), rng.uniform(0.2, 1, gen.sum()), rng.uniform(0, 0.6, gen.sum()), np.zeros(gen.sum())])
    cat_tuning[gen] = rng.dirichlet(np.ones(len(CATEGORIES)), gen.sum())
    # category-selective voxels: strong preference, some affinity for related categories
    affinity = {"faces": {"bodies": 0.35}, "bodies": {"faces": 0.3, "objects": 0.15}, "places": {"objects": 0.1},
                "words": {"objects": 0.15}, "objects": {"bodies": 0.2, "places": 0.1}}
    for c, cat in enumerate(CATEGORIES):
        m = role == ROLES.index(f"category-{cat}")
        k = m.sum()
        weights[m] = np.column_stack([np.full(k, 0.1), np.full(k, 0.25 if cat == "objects" else 0.1), np.ones(k), rng.uniform(0.2, 0.5, k)])
        row = np.zeros(len(CATEGORIES), np.float32)
        row[c] = 1.0
        for other, a in affinity[cat].items():
            row[CATEGORIES.index(other)] = a
        cat_tuning[m] = row * rng.uniform(0.8, 1.2, (k, 1))

    # noise ceiling SNR: by role, plus a sprinkle of very noisy signal voxels
    lo_hi = {"early": (0.3, 1.4), "mid": (0.2, 1.0), "general": (0.05, 0.7)}
    ncsnr = np.zeros(n)
    for r_name, (a, b) in lo_hi.items():
        m = role == ROLES.index(r_name)
        ncsnr[m] = rng.uniform(a, b, m.sum())
    catm = role >= ROLES.index("category-faces")
    ncsnr[catm] = rng.uniform(0.3, 1.2, catm.sum())
    noisy = (role != ROLES.index("none")) & (rng.uniform(size=n) < 0.12)
    ncsnr[noisy] = rng.uniform(0.02, 0.12, noisy.sum())
    noise_sd = rng.uniform(1.5, 4.0, n)
    baseline = np.where(role == ROLES.index("none"), rng.uniform(-0.5, 0.5, n), rng.uniform(0.0, 3.0, n))
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return VoxelModel(ijk=ijk, role=role, prf_x=f32(prf_x), prf_y=f32(prf_y), prf_sigma=f32(sigma),
                      orientation=f32(orientation), tuning=f32(tuning), exponent=f32(exponent), mid_mix=f32(mid_mix),
                      weights=weights, category_tuning=cat_tuning, ncsnr=f32(ncsnr), noise_sd=f32(noise_sd),
                      baseline=f32(baseline))


def raw_drive(model: VoxelModel, feats: dict, category_index: np.ndarray, image_latents: np.ndarray,
              norm: dict | None = None, block: int = 4096):
    """Noiseless drive (arbitrary units) of every model voxel to every image.

    Parameters
    ----------
    model : VoxelModel
    feats : dict
        :func:`features.stack_features` output for the images: ``energy`` (n_images, 4, 32, 32),
        ``mid`` (n_images, 2, 32, 32).
    category_index : numpy.ndarray
        int (n_images,), index into :data:`CATEGORIES`.
    image_latents : numpy.ndarray
        float (n_images, 2): [object scale (z-scored), exemplar latent] driving within-category variability.
    norm : dict or None
        Per-voxel mean/sd of the low- and mid-level terms (``low_mean``, ``low_sd``, ``mid_mean``, ``mid_sd``,
        each (n_voxels,)) used to standardise them; None computes them from these images (the reference set).

    Returns
    -------
    drive : numpy.ndarray
        float64 (n_images, n_voxels).
    norm : dict
        The standardisation used (pass it back in for other images, e.g. unseen ones).
    """
    n_img = feats["energy"].shape[0]
    energy = feats["energy"].reshape(n_img, 4, -1).astype(np.float32)
    mid = feats["mid"].reshape(n_img, 2, -1).astype(np.float32)
    e_mean = energy.mean(1)
    onehot = np.eye(len(CATEGORIES), dtype=np.float32)[category_index]
    n_vox = len(model.role)
    out = np.zeros((n_img, n_vox))
    if norm is None:
        norm = {k: np.zeros(n_vox) for k in ("low_mean", "low_sd", "mid_mean", "mid_sd")}
        fill = True
    else:
        fill = False
    ori_index = np.searchsorted(np.array(ORIENTATIONS_DEG), model.orientation)
    for s in range(0, n_vox, block):
        sl = slice(s, s + block)
        G = prf_weights(model.prf_x[sl], model.prf_y[sl], model.prf_sigma[sl]).T  # (1024, b)
        pooled_o = np.einsum("nop,pv->nov", energy, G)  # (n, 4, b)
        tuned = np.take_along_axis(pooled_o, ori_index[sl][None, None, :], axis=1)[:, 0]
        untuned = e_mean @ G
        tw = model.tuning[sl]
        low = np.maximum(tw * tuned + (1 - tw) * untuned, 1e-9) ** model.exponent[sl]
        mm = model.mid_mix[sl]
        midp = np.maximum(mm * (mid[:, 0] @ G) + (1 - mm) * (mid[:, 1] @ G), 1e-9) ** model.exponent[sl]
        ct = model.category_tuning[sl]  # (b, 5)
        cat = onehot @ ct.T  # (n, b)
        pref = ct.argmax(1)
        within = (category_index[:, None] == pref[None, :]) * (0.6 * image_latents[:, :1] + 0.8 * image_latents[:, 1:2])
        w = model.weights[sl]
        # standardise the feature terms (over the reference images) so the weights are comparable
        if fill:
            norm["low_mean"][sl], norm["low_sd"][sl] = low.mean(0), low.std(0) + 1e-9
            norm["mid_mean"][sl], norm["mid_sd"][sl] = midp.mean(0), midp.std(0) + 1e-9
        zl = (low - norm["low_mean"][sl]) / norm["low_sd"][sl]
        zm = (midp - norm["mid_mean"][sl]) / norm["mid_sd"][sl]
        out[:, sl] = w[:, 0] * zl + w[:, 1] * zm + w[:, 2] * 2.5 * cat + w[:, 3] * within
    return out, norm


def calibrate(model: VoxelModel, drive_reference: np.ndarray):
    """Affine map from drive to percent signal change so that, over the reference images, each voxel's
    response has mean ``baseline`` and sd ``ncsnr * noise_sd`` (the planted signal sd).

    Returns
    -------
    (offset, gain) : float64 (n_voxels,) each; response = offset + gain * drive.
    """
    mu = drive_reference.mean(0)
    sd = drive_reference.std(0)
    signal_sd = model.ncsnr.astype(float) * model.noise_sd
    gain = np.where(sd > 1e-12, signal_sd / np.where(sd > 1e-12, sd, 1), 0.0)
    offset = model.baseline - gain * mu
    return offset, gain
