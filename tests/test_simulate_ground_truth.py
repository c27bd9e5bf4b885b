"""The planted brain is recoverable from the simulated files with textbook analyses (numpy / sklearn)."""

from __future__ import annotations

import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainalign.errors import InputError


BETAS = "nsd/nsddata_betas/ppdata/{s}/func1pt8mm/betas_fithrf_GLMdenoise_RR"


def _nsd_session(root, subj, session=1):
    img = nib.load(root / BETAS.format(s=subj) / f"betas_session{session:02d}.nii.gz")
    return np.asarray(img.dataobj)  # int16 (X, Y, Z, 750)


def _ncsnr_nsd_recipe(betas_by_session, image_by_trial):
    """datasets.md §1.4: z-score per voxel within session; images with exactly 3 trials; v = sqrt(mean var);
    ncsnr = sqrt(max(0, 1 - v^2)) / v.  betas_by_session: list of (750, n_vox) float arrays."""
    z = np.concatenate([(b - b.mean(0)) / b.std(0) for b in betas_by_session])
    variances = []
    for im in np.unique(image_by_trial):
        trials = np.flatnonzero(image_by_trial == im)
        if len(trials) == 3:
            variances.append(z[trials].var(0, ddof=1))
    v = np.sqrt(np.nanmean(variances, axis=0))
    return np.sqrt(np.maximum(0, 1 - v**2)) / v


def _trial_ids(root, p):
    d = scipy.io.loadmat(root / "nsd/nsddata/experiments/nsd/nsd_expdesign.mat")
    mo = d["masterordering"].ravel()
    return d["subjectim"][p - 1, mo - 1] - 1  # 0-based nsdId per global trial


@pytest.mark.parametrize("subj", ["subj01", "subj02"])
def test_ncsnr_recipe_recovers_planted(simulated_root, subj):
    gt = np.load(simulated_root / f"ground_truth/nsd_{subj}.npz")
    ijk = gt["voxel_ijk"]
    n_sessions = len(list((simulated_root / BETAS.format(s=subj)).glob("betas_session*.nii.gz")))
    sessions = [_nsd_session(simulated_root, subj, s)[ijk[:, 0], ijk[:, 1], ijk[:, 2]].T / 300.0
                for s in range(1, n_sessions + 1)]
    ids = _trial_ids(simulated_root, int(subj[-2:]))[: 750 * n_sessions]
    estimate = _ncsnr_nsd_recipe(sessions, ids)
    planted = gt["ncsnr"]
    signal = planted > 0
    assert signal.sum() > 300 and (~signal).sum() > 10
    assert np.corrcoef(estimate[signal], planted[signal])[0, 1] > 0.9
    assert np.median(np.abs(estimate[signal] - planted[signal])) < 0.1
    assert np.mean(estimate[~signal]) < 0.15, "no-signal voxels should have ncsnr near 0"
    # the planted value is also what ncsnr.nii.gz holds
    vol = np.asarray(nib.load(simulated_root / BETAS.format(s=subj) / "ncsnr.nii.gz").dataobj)
    np.testing.assert_allclose(vol[tuple(ijk.T)], planted, rtol=1e-6)
    # the noiseless response is what the betas average to (high-SNR voxels)
    good = planted > 0.8
    pos = {v: i for i, v in enumerate(gt["image_ids"])}
    uniq = np.unique(ids)
    mean_betas = np.stack([np.concatenate(sessions)[ids == u][:, good].mean(0) for u in uniq])
    resp = gt["response"][[pos[u] for u in uniq]][:, good]
    r = [np.corrcoef(mean_betas[:, k], resp[:, k])[0, 1] for k in range(good.sum())]
    assert np.median(r) > 0.7


def _cv_accuracy(X, y, seed=0):
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    return cross_val_score(clf, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed)).mean()


def test_category_decodable_from_category_rois(simulated_root):
    """Category-ROI voxels chosen from the ROI files (floc-* > 0), averaged over repetitions."""
    roi_dir = simulated_root / "nsd/nsddata/ppdata/subj01/func1pt8mm/roi"
    mask = np.zeros(nib.load(roi_dir / "floc-faces.nii.gz").shape, bool)
    for atlas in ("floc-faces", "floc-bodies", "floc-places", "floc-words"):
        mask |= np.asarray(nib.load(roi_dir / f"{atlas}.nii.gz").dataobj) > 0
    betas = _nsd_session(simulated_root, "subj01")[mask].T.astype(float) / 300  # (750, n_vox)
    ids = _trial_ids(simulated_root, 1)[:750]
    uniq = np.unique(ids)
    X = np.stack([betas[ids == u].mean(0) for u in uniq])
    cats = pd.read_parquet(simulated_root / "ground_truth/nsd_images.parquet").set_index("nsdId")["category"]
    y = cats.loc[uniq].to_numpy()
    assert len(set(y)) == 5
    acc = _cv_accuracy(X, y)
    shuffled = _cv_accuracy(X, np.random.default_rng(0).permutation(y))
    assert acc > 0.6, acc
    assert shuffled < 0.35, shuffled


def test_bold5000_place_rois_prefer_places(simulated_root):
    root = simulated_root / "bold5000"
    names = np.array((root / "GLMsingle/CSI2_imgnames.txt").read_text().splitlines())
    betas = np.concatenate([np.asarray(nib.load(p).dataobj) for p in
                            sorted((root / "GLMsingle").glob("CSI2_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-*.nii.gz"))], axis=3)
    cats = pd.read_parquet(simulated_root / "ground_truth/bold5000_images.parquet").set_index("stimulus")["category"]
    is_place = cats.loc[names].to_numpy() == "places"

    def place_preference(name):
        m = np.asarray(nib.load(root / f"derivatives/spm/sub-CSI2/sub-CSI2_mask-{name}.nii.gz").dataobj) > 0
        x = betas[m].T  # (n_trials, n_vox), single trials
        z = (x - x.mean(0)) / x.std(0)
        return z[is_place].mean() - z[~is_place].mean()

    for name in ("LHPPA", "RHPPA"):
        assert place_preference(name) > 0.3
        assert place_preference(name) > abs(place_preference(name[:2] + "EarlyVis")) + 0.2


def test_eeg_category_decodable_after_onset_not_before(simulated_root):
    d = np.load(simulated_root / "things_eeg2/eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_training.npy",
                allow_pickle=True).item()
    x = d["preprocessed_eeg_data"].mean(1)  # (n_cond, 17, 100)
    times = np.asarray(d["times"])
    imgs = pd.read_parquet(simulated_root / "ground_truth/things_eeg2_images.parquet")
    y = imgs[imgs["split"] == "training"].sort_values("condition")["category"].to_numpy()
    pre = x[:, :, (times >= -0.2) & (times < 0)].reshape(len(x), -1)
    post = x[:, :, (times >= 0.15) & (times <= 0.3)].reshape(len(x), -1)
    assert _cv_accuracy(post, y) > 0.6
    assert _cv_accuracy(pre, y) < 0.4
    # early low-level component: contrast energy of the contralateral hemifield predicts occipital 80-120 ms
    early = x[:, :, (times >= 0.08) & (times <= 0.12)].mean(2)
    train = imgs[imgs["split"] == "training"].sort_values("condition")
    o1, o2 = d["ch_names"].index("O1"), d["ch_names"].index("O2")
    assert np.corrcoef(early[:, o2], train["contrast_left"])[0, 1] > 0.5
    assert np.corrcoef(early[:, o1], train["contrast_right"])[0, 1] > 0.5
    assert abs(np.corrcoef(x[:, o2, times < 0].mean(1), train["contrast_left"])[0, 1]) < 0.3


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deterministic_given_seed(simulated_root, simulated_config, tmp_path):
    from brainalign.simulate import simulate

    again = tmp_path / "again"
    simulate(again, **simulated_config, datasets=("nsd",))
    for name in ("betas_session01.nii.gz", "betas_session01.hdf5", "ncsnr.nii.gz"):
        a = simulated_root / BETAS.format(s="subj02") / name
        b = again / BETAS.format(s="subj02") / name
        assert _sha(a) == _sha(b), name
    with pytest.raises(InputError):
        simulate(tmp_path, **simulated_config)  # non-empty folder that is not a simulator output
