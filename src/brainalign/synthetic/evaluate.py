"""Evaluations of synthetic fMRI (methods.md §2.4 / §2.5), on plain arrays.

Claim 1 (noise comparison), per ROI, on held-out images with real repetitions ``x_{m,r}`` and synthetic
pattern ``s_m``::

    c_syn(m)  = mean_r          corr_voxels(s_m, x_{m,r})
    c_real(m) = mean_{r != r'}  corr_voxels(x_{m,r}, x_{m,r'})

paired across images (Wilcoxon signed-rank and paired t-test). Per-voxel variant: the same with
correlations across images. Split-half ceiling: corr(mean of first half of reps, mean of second half).
Patterns are taken relative to the encoder's training mean per voxel (training statistics only) so the
voxel mean pattern does not inflate both sides. ``c_syn > c_real`` is expected when the prediction
approximates the noise-free response; it is not "better than the brain".

Claim 2 (decoding): an L2 logistic regression trained on synthetic responses to images never shown in the
scanner, tested on real (repetition-averaged) responses to held-out images, beside the same classifier
trained on real responses (stratified K-fold over the real test images). Balanced accuracy, chance =
1 / n_classes, one-sided permutation p-value (labels of the test set permuted against the fixed
predictions, fixed seed; for the real baseline the same test on the pooled cross-validated predictions,
which is conservative).

Standardisation (``standardize``): every pattern is z-scored across its voxels (``"rows"``); with
``"domain"`` (default) each voxel is then also z-scored within each domain, over the synthetic training
samples and over the real test samples separately (their own mean and sd, no labels). Synthetic responses are
ridge predictions: per voxel they are shrunk by a voxel-specific amount and, for categories the encoder never
saw, offset from the real responses. Row z-scoring alone leaves those per-voxel offsets, and a decoder
trained on synthetic patterns then puts every real pattern on one side of its boundary (balanced accuracy
exactly chance); per-domain voxel standardisation removes offset and scale per voxel in each domain,
as in cross-dataset decoding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..encoding.scoring import pearson_r
from ..zscore import zscore_columns, zscore_rows


def claim1_patterns(synthetic, reps) -> pd.DataFrame:
    """Pattern correlations per image.

    Parameters
    ----------
    synthetic : ndarray (n_images, n_voxels)
    reps : ndarray (n_images, max_reps, n_voxels), NaN-padded real repetitions

    Returns
    -------
    DataFrame per image with ≥ 2 reps: image (row index), n_reps, c_syn, c_real, c_split_half
    """
    synthetic = np.asarray(synthetic, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64)
    n_reps = (~np.isnan(reps[:, :, 0])).sum(1)
    rows = []
    for m in np.flatnonzero(n_reps >= 2):
        x = reps[m, : n_reps[m]]
        c_syn = pearson_r(np.broadcast_to(synthetic[m], x.shape), x, axis=1).mean()
        R = np.corrcoef(x)
        c_real = R[~np.eye(len(x), dtype=bool)].mean()
        h = len(x) // 2
        c_half = np.corrcoef(x[:h].mean(0), x[h:].mean(0))[0, 1]
        rows.append({"image": int(m), "n_reps": int(n_reps[m]), "c_syn": c_syn, "c_real": c_real,
                     "c_split_half": c_half})
    return pd.DataFrame(rows, columns=["image", "n_reps", "c_syn", "c_real", "c_split_half"])


def claim1_voxels(synthetic, reps, min_images: int = 5) -> pd.DataFrame:
    """Per-voxel variant: correlations across images.

    ``c_syn_v = mean_r corr_images(s, x_r)`` over images that have repetition r; ``c_real_v`` = mean over
    ordered pairs r != r' of ``corr_images(x_r, x_r')`` over images that have both.

    Returns
    -------
    DataFrame per voxel: voxel (column index), c_syn, c_real
    """
    synthetic = np.asarray(synthetic, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64)
    has = ~np.isnan(reps[:, :, 0])
    R = reps.shape[1]
    syn, real = [], []
    for r in range(R):
        if has[:, r].sum() >= min_images:
            syn.append(pearson_r(synthetic[has[:, r]], reps[has[:, r], r]))
        for q in range(R):
            both = has[:, r] & has[:, q]
            if q != r and both.sum() >= min_images:
                real.append(pearson_r(reps[both, r], reps[both, q]))
    nv = reps.shape[2]
    c_syn = np.mean(syn, axis=0) if syn else np.full(nv, np.nan)
    c_real = np.mean(real, axis=0) if real else np.full(nv, np.nan)
    return pd.DataFrame({"voxel": np.arange(nv), "c_syn": c_syn, "c_real": c_real})


def paired_tests(a, b) -> dict:
    """Paired comparison of a vs b (NaN pairs dropped): mean difference, Wilcoxon, paired t-test."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out = {"n": int(ok.sum()), "mean_a": float(np.mean(a)) if a.size else np.nan,
           "mean_b": float(np.mean(b)) if b.size else np.nan,
           "mean_diff": float(np.mean(a - b)) if a.size else np.nan,
           "wilcoxon_stat": np.nan, "wilcoxon_p": np.nan, "ttest_t": np.nan, "ttest_p": np.nan}
    if a.size >= 3 and np.any(a != b):
        w = stats.wilcoxon(a, b)
        t = stats.ttest_rel(a, b)
        out.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue), ttest_t=float(t.statistic),
                   ttest_p=float(t.pvalue))
    return out


STANDARDIZE = ("rows", "domain")


def standardize_patterns(X, how: str = "domain"):
    """Patterns of one domain (one set of samples) prepared for the decoder.

    Parameters
    ----------
    X : ndarray (n_samples, n_voxels)
    how : {"rows", "domain"}
        ``rows``: z-score each pattern across voxels. ``domain``: then z-score each voxel across the samples.

    Returns
    -------
    ndarray (n_samples, n_voxels) float64
    """
    if how not in STANDARDIZE:
        raise ValueError(f"standardize must be one of {STANDARDIZE}, not {how!r}")
    Z = zscore_rows(X)
    return zscore_columns(Z) if how == "domain" else Z


def make_classifier(C: float = 1.0, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, random_state=seed)


def _balanced_accuracy_many(Y, pred, n_classes):
    """Balanced accuracy of ``pred`` (n,) against each row of the integer label matrix ``Y`` (m, n)."""
    m = Y.shape[0]
    hits = (Y == pred[None, :]).astype(np.float64)
    per = np.bincount((Y + n_classes * np.arange(m)[:, None]).ravel(), weights=hits.ravel(),
                      minlength=m * n_classes).reshape(m, n_classes)
    counts = np.bincount(Y[0], minlength=n_classes).astype(np.float64)  # same for every permutation
    present = counts > 0
    return (per[:, present] / counts[present]).mean(1)


def permutation_p(y_true, y_pred, n_permutations: int = 1000, seed: int = 0):
    """Balanced accuracy (sklearn definition) and one-sided permutation p-value ``(1 + #null >= obs) / (1 + n)``,
    permuting the true labels against the fixed predictions (seeded)."""
    classes, y = np.unique(np.concatenate([np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)]),
                           return_inverse=True)
    yt, yp = y[: len(y_true)], y[len(y_true):]
    obs = float(_balanced_accuracy_many(yt[None, :], yp, len(classes))[0])
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(yt) for _ in range(n_permutations)]) if n_permutations else yt[None, :0]
    null = _balanced_accuracy_many(perms, yp, len(classes)) if n_permutations else np.array([])
    return obs, float((1 + np.sum(null >= obs - 1e-12)) / (1 + n_permutations))


def decode_synthetic_to_real(syn_X, syn_y, real_X, real_y, n_per_class=(10, 50, 100, 500, 1000), n_repeats=5,
                             C: float = 1.0, n_permutations: int = 1000, seed: int = 0, syn_noise_sd=None,
                             real_folds: int = 5, standardize: str = "domain") -> pd.DataFrame:
    """Sweep the number of synthetic training samples per class; test on real responses.

    Parameters
    ----------
    syn_X : ndarray (n_syn, n_voxels)
        Synthetic responses to images never shown in the scanner; ``syn_y`` their classes.
    real_X : ndarray (n_real, n_voxels)
        Real responses (repetition-averaged) to held-out images; ``real_y`` their classes.
    n_per_class : sequence of int
        Synthetic samples per class; values above the available images per class are dropped unless
        ``syn_noise_sd`` is given (then images are resampled with replacement and Gaussian noise with
        per-voxel sd ``syn_noise_sd`` is added).
    n_repeats : int
        Random draws per N (balanced accuracy averaged; p-value from the first draw's predictions).
    standardize : {"domain", "rows"}
        See the module docstring: ``domain`` z-scores patterns across voxels and then voxels within each
        domain (the drawn synthetic training set; the real test set); ``rows`` only the former.

    Returns
    -------
    DataFrame rows: train ("synthetic" | "real"), n_per_class, balanced_accuracy, sd, chance, p_value,
    n_classes, n_train, n_test, standardize
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    syn_X = np.asarray(syn_X, dtype=np.float64)
    real_X = np.asarray(real_X, dtype=np.float64)
    syn_y = np.asarray(syn_y).astype(str)
    real_y = np.asarray(real_y).astype(str)
    classes = sorted(set(syn_y) & set(real_y))
    if len(classes) < 2:
        raise ValueError(f"need >= 2 classes present in both synthetic and real data, have {classes}")
    keep_s = np.isin(syn_y, classes)
    keep_r = np.isin(real_y, classes)
    syn_X, syn_y, real_X, real_y = syn_X[keep_s], syn_y[keep_s], real_X[keep_r], real_y[keep_r]
    chance = 1.0 / len(classes)
    if standardize not in STANDARDIZE:
        raise ValueError(f"standardize must be one of {STANDARDIZE}, not {standardize!r}")
    Zr = standardize_patterns(real_X, standardize)
    rng = np.random.default_rng(seed)
    per_class = {c: np.flatnonzero(syn_y == c) for c in classes}
    available = min(len(v) for v in per_class.values())
    rows = []
    for n in sorted(set(int(v) for v in n_per_class)):
        if n > available and syn_noise_sd is None:
            continue
        accs, p = [], np.nan
        for rep in range(n_repeats):
            idx = np.concatenate([rng.choice(per_class[c], size=n, replace=n > len(per_class[c])) for c in classes])
            Xs = syn_X[idx]
            if syn_noise_sd is not None:
                Xs = Xs + rng.normal(size=Xs.shape) * np.asarray(syn_noise_sd)[None, :]
            clf = make_classifier(C, seed).fit(standardize_patterns(Xs, standardize), syn_y[idx])
            pred = clf.predict(Zr)
            if rep == 0:
                acc, p = permutation_p(real_y, pred, n_permutations, seed)
            else:
                from sklearn.metrics import balanced_accuracy_score

                acc = balanced_accuracy_score(real_y, pred)
            accs.append(acc)
        rows.append({"train": "synthetic", "n_per_class": n, "balanced_accuracy": float(np.mean(accs)),
                     "sd": float(np.std(accs)), "chance": chance, "p_value": p, "n_classes": len(classes),
                     "n_train": n * len(classes), "n_test": len(real_y), "standardize": standardize})
    # baseline: the same classifier trained on real responses (stratified K-fold over the real images)
    counts = pd.Series(real_y).value_counts()
    k = int(min(real_folds, counts.min()))
    if k >= 2:
        cv = StratifiedKFold(k, shuffle=True, random_state=seed)
        pred = cross_val_predict(make_classifier(C, seed), Zr, real_y, cv=cv)
        score, p = permutation_p(real_y, pred, n_permutations, seed)
        rows.append({"train": "real", "n_per_class": int(round(counts.mean() * (k - 1) / k)),
                     "balanced_accuracy": float(score), "sd": np.nan, "chance": chance, "p_value": float(p),
                     "n_classes": len(classes), "n_train": int(len(real_y) * (k - 1) / k), "n_test": len(real_y),
                     "standardize": standardize})
    return pd.DataFrame(rows)
