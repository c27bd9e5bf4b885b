"""Evaluations of synthetic fMRI (methods.md §2.4 / §2.5), on plain arrays.

Claim 1 (noise comparison), per ROI, on held-out images with real repetitions ``x_{m,r}`` and synthetic
pattern ``s_m``::

    c_syn(m)  = mean_r          corr_voxels(s_m, x_{m,r})
    c_real(m) = mean_{r != r'}  corr_voxels(x_{m,r}, x_{m,r'})

paired across images (Wilcoxon signed-rank and paired t-test; the mean difference with a bootstrap CI over
images). Per-voxel variant: the same with
correlations across images. Split-half ceiling: corr(mean of first half of reps, mean of second half).
Patterns are taken relative to the encoder's training mean per voxel (training statistics only) so the
voxel mean pattern does not inflate both sides. ``c_syn > c_real`` is expected when the prediction
approximates the noise-free response; it is not "better than the brain".

Claim 2 (decoding): an L2 logistic regression trained on synthetic responses to images never shown in the
scanner, tested on real (repetition-averaged) responses to held-out images, beside the same classifier
trained on real responses (stratified K-fold over the real test images). Balanced accuracy (mean over the
random draws of the synthetic training set), chance = 1 / n_classes, permutation p-values over **all** draws:
each permutation shuffles the test labels once and scores every draw's fixed predictions against them, so
the null is that of the draws' mean accuracy (:func:`permutation_p_draws`; one-sided ``p_value`` and
two-sided ``p_two_sided``); for the real baseline the same test on the pooled cross-validated predictions,
which is conservative. The sample size of the verdict is fixed before the run (``declared_n``, config
``synthetic.decoding_samples_per_class``); the sweep over sizes is descriptive.

Standardisation (``standardize``): every pattern is z-scored across its voxels (``"rows"``); with
``"center"`` (default) each voxel is then centred within each domain, over the synthetic training samples and
over the real test samples separately (their own means, no labels); ``"domain"`` also divides by each
domain's per-voxel sd. Synthetic responses are ridge predictions: per voxel they are shrunk by a
voxel-specific amount and, for categories the encoder never saw, offset from the real responses. Row
z-scoring alone leaves those per-voxel offsets, and a decoder trained on synthetic patterns then puts every
real pattern on one side of its boundary (balanced accuracy exactly chance); per-domain centring removes them.
Per-domain *scaling* does harm: voxels whose synthetic responses barely vary (those the encoder cannot predict
for an unseen category, and noise voxels) get the weight of the well-predicted ones, and their
extrapolation artefacts can turn the decoder's direction around (the demo's 0.13 on unseen places vs words:
docs/encoding.md). Centring leaves each voxel's synthetic variance as the encoder predicts it, so the L2
decoder leans on the voxels it can predict.
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


def paired_tests(a, b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Paired comparison of a vs b (NaN pairs dropped): mean difference with a percentile bootstrap CI over the
    pairs (``n_boot`` draws, seeded), Wilcoxon signed-rank, paired t-test (both two-sided)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out = {"n": int(ok.sum()), "mean_a": float(np.mean(a)) if a.size else np.nan,
           "mean_b": float(np.mean(b)) if b.size else np.nan,
           "mean_diff": float(np.mean(a - b)) if a.size else np.nan, "diff_ci_low": np.nan, "diff_ci_high": np.nan,
           "wilcoxon_stat": np.nan, "wilcoxon_p": np.nan, "ttest_t": np.nan, "ttest_p": np.nan}
    if a.size >= 2 and n_boot > 0:
        d = a - b
        draws = d[np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
        out["diff_ci_low"], out["diff_ci_high"] = (float(v) for v in np.quantile(draws, [(1 - level) / 2,
                                                                                          (1 + level) / 2]))
    if a.size >= 3 and np.any(a != b):
        w = stats.wilcoxon(a, b)
        t = stats.ttest_rel(a, b)
        out.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue), ttest_t=float(t.statistic),
                   ttest_p=float(t.pvalue))
    return out


STANDARDIZE = ("center", "domain", "rows")


def standardize_patterns(X, how: str = "center"):
    """Patterns of one domain (one set of samples) prepared for the decoder.

    Parameters
    ----------
    X : ndarray (n_samples, n_voxels)
    how : {"center", "domain", "rows"}
        ``rows``: z-score each pattern across voxels. ``center``: then centre each voxel across the samples.
        ``domain``: then z-score each voxel across the samples.

    Returns
    -------
    ndarray (n_samples, n_voxels) float64
    """
    if how not in STANDARDIZE:
        raise ValueError(f"standardize must be one of {STANDARDIZE}, not {how!r}")
    Z = zscore_rows(X)
    if how == "center":
        return Z - Z.mean(axis=0, keepdims=True)
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
    out = permutation_p_draws(y_true, np.asarray(y_pred)[None, :], n_permutations, seed, n_boot=0)
    return out["balanced_accuracy"], out["p_value"]


def _balanced_accuracy_rows(Y, P, n_classes):
    """Balanced accuracy of each row of predictions ``P`` (m, n) against the labels of the same row of ``Y``
    (m, n), integer codes; classes absent from a row's labels are left out of its mean."""
    m = Y.shape[0]
    flat = (Y + n_classes * np.arange(m)[:, None]).ravel()
    hits = np.bincount(flat, weights=(Y == P).ravel().astype(np.float64), minlength=m * n_classes)
    counts = np.bincount(flat, minlength=m * n_classes).astype(np.float64)
    hits, counts = hits.reshape(m, n_classes), counts.reshape(m, n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(counts > 0, hits / counts, np.nan), axis=1)


def permutation_p_draws(y_true, y_preds, n_permutations: int = 1000, seed: int = 0, n_boot: int = 1000,
                        level: float = 0.95) -> dict:
    """Mean balanced accuracy of several draws' predictions of the same test set, and its permutation p-values.

    Each permutation shuffles the true labels once and scores every draw against that same shuffle, so the
    null distribution is that of the statistic reported (the mean over draws), not of one draw.

    Parameters
    ----------
    y_true : array (n_test,) labels
    y_preds : array (n_draws, n_test) predicted labels of each draw (e.g. classifiers trained on different random
        synthetic training sets)
    n_permutations : int; seed : int (the shuffles and the bootstrap)
    n_boot : int, bootstrap draws over test images for the CI (each resamples the images once for every draw's
        predictions); level : its confidence level

    Returns
    -------
    dict: ``balanced_accuracy`` (mean over draws), ``per_draw`` (n_draws,), ``null`` (n_permutations,) null means,
    ``p_value`` one-sided ``(1 + #null >= obs) / (1 + n)``, ``p_two_sided`` ``(1 + #|null - c| >= |obs - c|) /
    (1 + n)`` with ``c`` = chance = 1 / n_classes of the test labels, ``ci_low`` / ``ci_high`` (percentile
    bootstrap over test images; NaN without draws)
    """
    y_true = np.asarray(y_true).astype(str)
    y_preds = np.atleast_2d(np.asarray(y_preds).astype(str))
    classes, codes = np.unique(np.concatenate([y_true, y_preds.ravel()]), return_inverse=True)
    yt = codes[: len(y_true)]
    yp = codes[len(y_true):].reshape(y_preds.shape)
    k = len(classes)
    per_draw = np.array([_balanced_accuracy_many(yt[None, :], p, k)[0] for p in yp])
    obs = float(per_draw.mean())
    chance = 1.0 / len(np.unique(yt))
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(yt) for _ in range(n_permutations)]) if n_permutations else yt[None, :0]
    null = (np.mean([_balanced_accuracy_many(perms, p, k) for p in yp], axis=0) if n_permutations
            else np.array([]))
    tol = 1e-12
    ci = (np.nan, np.nan)
    if n_boot > 0:
        idx = np.random.default_rng(seed + 1).integers(0, len(yt), size=(n_boot, len(yt)))
        boots = np.mean([_balanced_accuracy_rows(yt[idx], p[idx], k) for p in yp], axis=0)
        ci = tuple(float(v) for v in np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2]))
    return {"balanced_accuracy": obs, "per_draw": per_draw, "null": null, "ci_low": ci[0], "ci_high": ci[1],
            "p_value": float((1 + np.sum(null >= obs - tol)) / (1 + n_permutations)),
            "p_two_sided": float((1 + np.sum(np.abs(null - chance) >= abs(obs - chance) - tol))
                                 / (1 + n_permutations))}


def decode_synthetic_to_real(syn_X, syn_y, real_X, real_y, n_per_class=(10, 50, 100, 500, 1000), n_repeats=5,
                             C: float = 1.0, n_permutations: int = 1000, seed: int = 0, syn_noise_sd=None,
                             real_folds: int = 5, standardize: str = "center", declared_n=None) -> pd.DataFrame:
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
        Random draws per N (balanced accuracy averaged; p-values of that mean, over all draws:
        :func:`permutation_p_draws`).
    standardize : {"center", "domain", "rows"}
        See the module docstring: ``center`` z-scores patterns across voxels and then centres each voxel within
        each domain (the drawn synthetic training set; the real test set); ``domain`` also scales it there;
        ``rows`` only the first step.
    declared_n : int, optional
        The sample size fixed before the run for the verdict; evaluated even if not in ``n_per_class`` (its row has
        ``declared`` True; none when it exceeds the images available without ``syn_noise_sd``).

    Returns
    -------
    DataFrame rows: train ("synthetic" | "real"), n_per_class, balanced_accuracy, sd, chance, p_value (one-sided),
    p_two_sided, ci_low, ci_high (of the balanced accuracy, bootstrap over test images), classes (comma-joined),
    n_draws, declared, n_classes, n_train, n_test, standardize
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
    sizes = set(int(v) for v in n_per_class) | ({int(declared_n)} if declared_n is not None else set())
    for n in sorted(sizes):
        if n > available and syn_noise_sd is None:
            continue
        preds = []
        for _ in range(n_repeats):
            idx = np.concatenate([rng.choice(per_class[c], size=n, replace=n > len(per_class[c])) for c in classes])
            Xs = syn_X[idx]
            if syn_noise_sd is not None:
                Xs = Xs + rng.normal(size=Xs.shape) * np.asarray(syn_noise_sd)[None, :]
            clf = make_classifier(C, seed).fit(standardize_patterns(Xs, standardize), syn_y[idx])
            preds.append(clf.predict(Zr))
        test = permutation_p_draws(real_y, np.stack(preds), n_permutations, seed)
        rows.append({"train": "synthetic", "n_per_class": n, "balanced_accuracy": test["balanced_accuracy"],
                     "sd": float(np.std(test["per_draw"])), "chance": chance, "p_value": test["p_value"],
                     "p_two_sided": test["p_two_sided"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
                     "classes": ",".join(classes), "n_draws": len(preds),
                     "declared": declared_n is not None and n == int(declared_n), "n_classes": len(classes),
                     "n_train": n * len(classes), "n_test": len(real_y), "standardize": standardize})
    # baseline: the same classifier trained on real responses (stratified K-fold over the real images)
    counts = pd.Series(real_y).value_counts()
    k = int(min(real_folds, counts.min()))
    if k >= 2:
        cv = StratifiedKFold(k, shuffle=True, random_state=seed)
        pred = cross_val_predict(make_classifier(C, seed), Zr, real_y, cv=cv)
        test = permutation_p_draws(real_y, pred[None, :], n_permutations, seed)
        rows.append({"train": "real", "n_per_class": int(round(counts.mean() * (k - 1) / k)),
                     "balanced_accuracy": test["balanced_accuracy"], "sd": np.nan, "chance": chance,
                     "p_value": test["p_value"], "p_two_sided": test["p_two_sided"], "ci_low": test["ci_low"],
                     "ci_high": test["ci_high"], "classes": ",".join(classes), "n_draws": 1, "declared": False,
                     "n_classes": len(classes), "n_train": int(len(real_y) * (k - 1) / k), "n_test": len(real_y),
                     "standardize": standardize})
    return pd.DataFrame(rows)
