"""Simulated THINGS-EEG2 tree (datasets.md §3): preprocessed EEG dicts, image_metadata.npy, image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .._io import progress
from .config import SimConfig
from .image_sets import balanced_categories, category_index, make_image_params_for, params_table, render_all
from .images import CATEGORIES
from .seeds import rng_for

CH_NAMES = ["Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4", "PO8", "P6", "P2"]
#: rough scalp positions (x: left - / right +, y: posterior -), used for smooth spatial patterns
CH_POS = np.array([(0, 0), (-0.5, 0), (-1, -0.1), (-0.3, -1), (0, -1), (0.3, -1), (0.5, 0), (1, -0.1), (-0.25, 0),
                   (-0.75, 0), (-0.8, -0.6), (-0.35, -0.55), (0, -0.55), (0.35, -0.55), (0.8, -0.6), (0.75, 0), (0.25, 0)])
TIMES = np.round(np.arange(-20, 80) / 100, 2)  # -0.20 .. 0.79 s, 100 Hz
IMAGES_PER_CONCEPT = 10
EARLY_PEAK, EARLY_SD, EARLY_ONSET = 0.10, 0.015, 0.05
LATE_PEAK, LATE_SD, LATE_ONSET = 0.22, 0.045, 0.12

VOCAB = {
    "faces": ["baby", "boy", "girl", "man", "woman", "clown", "grandmother", "king", "queen", "pirate", "nurse", "chef",
              "cowboy", "doll", "mask", "portrait", "astronaut", "bride", "referee", "wizard"],
    "bodies": ["arm", "leg", "hand", "foot", "torso", "dancer", "runner", "swimmer", "gymnast", "skier", "knee",
               "elbow", "shoulder", "acrobat", "boxer", "juggler", "hiker", "diver", "skater", "wrestler"],
    "places": ["barn", "bridge", "castle", "church", "garage", "lighthouse", "skyscraper", "tent", "hut", "igloo",
               "windmill", "pagoda", "stadium", "station", "temple", "tower", "warehouse", "cabin", "palace", "factory"],
    "words": ["sign", "book", "poster", "newspaper", "label", "menu", "banner", "ticket", "calendar", "envelope",
              "billboard", "license_plate", "scoreboard", "receipt", "map", "magazine", "flyer", "postcard", "notebook",
              "road_sign"],
    "objects": ["aardvark_toy", "anchor", "bell", "bucket", "chair", "hammer", "kettle", "lamp", "mug", "vase", "ball",
                "bottle", "clock", "drum", "helmet", "ladder", "padlock", "teapot", "wheel", "aircraft_carrier"],
}
_MODIFIERS = ["old", "small", "toy", "red", "wooden", "metal", "big", "broken"]


def _concepts(n_train: int, n_test: int, rng) -> tuple[list, list, dict]:
    """Disjoint, category-balanced concept names for training and test."""
    total = n_train + n_test
    cats = list(balanced_categories(total, rng))
    used, names, cat_of = set(), [], {}
    pools = {c: list(rng.permutation(VOCAB[c])) for c in CATEGORIES}
    for cat in cats:
        if pools[cat]:
            name = str(pools[cat].pop())
        else:
            while True:
                name = f"{rng.choice(_MODIFIERS)}_{rng.choice(VOCAB[cat])}"
                if name not in used:
                    break
        used.add(name)
        names.append(name)
        cat_of[name] = cat
    return sorted(names[:n_train]), sorted(names[n_train:]), cat_of


def write_things_eeg2(root, cfg: SimConfig, seed: int, gt_dir) -> dict:
    """Write the THINGS-EEG2 tree under ``root`` (= DIR/things_eeg2) and ground truth under ``gt_dir``.

    Sizes: ``things_train_concepts`` x 10 training images, ``things_test_concepts`` test images (one each);
    training data have ``things_train_reps`` repetitions (4, real), test data ``things_test_reps`` (80 real;
    fewer in the small presets).
    """
    root, gt_dir = Path(root), Path(gt_dir)
    rng = rng_for(seed, "things")
    train_c, test_c, cat_of = _concepts(cfg.things_train_concepts, cfg.things_test_concepts, rng)
    things_index = {c: i + 1 for i, c in enumerate(sorted(train_c + test_c))}
    records = []  # (split, folder, file, concept, category)
    for split, concepts, per in (("training", train_c, IMAGES_PER_CONCEPT), ("test", test_c, 1)):
        for i, concept in enumerate(concepts):
            nums = np.sort(rng.choice(np.arange(1, 13), per, replace=False))
            for nn in nums:
                suffix = "b" if rng.uniform() < 0.5 else "s"
                records.append((split, f"{i + 1:05d}_{concept}", f"{concept}_{nn:02d}{suffix}.jpg", concept, cat_of[concept]))
    img_root = root / "image_set"
    for split, folder, *_ in records:
        (img_root / f"{split}_images" / folder).mkdir(parents=True, exist_ok=True)
    # concept-level colour: images of one concept share a hue (plus jitter)
    concept_hue = {c: float(rng.uniform()) for c in cat_of}
    params = make_image_params_for([r[4] for r in records], seed, "things_images")
    for p, r in zip(params, records):
        p["hue"] = float((concept_hue[r[3]] + rng.normal(0, 0.04)) % 1.0)

    def sink(k, img):
        split, folder, fname, *_ = records[k]
        Image.fromarray(img).save(img_root / f"{split}_images" / folder / fname, format="JPEG", quality=90)

    feats = render_all(params, 500, sink, desc="THINGS images")
    split = np.array([r[0] for r in records])
    tr, te = split == "training", split == "test"
    meta = {
        "train_img_concepts": np.array([r[1] for r in records if r[0] == "training"]),
        "train_img_files": np.array([r[2] for r in records if r[0] == "training"]),
        "train_img_concepts_THINGS": np.array([f"{things_index[r[3]]:05d}_{r[3]}" for r in records if r[0] == "training"]),
        "test_img_concepts": np.array([r[1] for r in records if r[0] == "test"]),
        "test_img_files": np.array([r[2] for r in records if r[0] == "test"]),
        "test_img_concepts_THINGS": np.array([f"{things_index[r[3]]:05d}_{r[3]}" for r in records if r[0] == "test"]),
    }
    np.save(img_root / "image_metadata.npy", meta, allow_pickle=True)
    table = params_table(params, feats)
    table.insert(0, "concept", [r[3] for r in records])
    table.insert(0, "condition", np.concatenate([np.arange(tr.sum()), np.arange(te.sum())]))
    table.insert(0, "split", split)
    table.insert(0, "path", [f"image_set/{r[0]}_images/{r[1]}/{r[2]}" for r in records])
    table.insert(0, "stimulus", [r[2] for r in records])
    table.to_parquet(gt_dir / "things_eeg2_images.parquet", index=False)

    # planted EEG components
    cat_idx = category_index(params)
    z = lambda a: (a - a.mean()) / (a.std() + 1e-12)  # noqa: E731
    c_left, c_right = z(feats["contrast_lr"][:, 0]), z(feats["contrast_lr"][:, 1])
    exemplar = np.array([p["exemplar"] for p in params])
    early_tc = np.exp(-((TIMES - EARLY_PEAK) ** 2) / (2 * EARLY_SD**2)) * (TIMES >= EARLY_ONSET)
    late_tc = np.exp(-((TIMES - LATE_PEAK) ** 2) / (2 * LATE_SD**2)) * (TIMES >= LATE_ONSET)
    occipital = np.exp(-((CH_POS[:, 1] + 1) ** 2) / 0.5)
    w_left_field = occipital * (0.3 + (CH_POS[:, 0] > 0))  # right-hemisphere channels see the left field
    w_right_field = occipital * (0.3 + (CH_POS[:, 0] < 0))
    shared_patterns = _smooth_patterns(rng_for(seed, "things", 7), len(CATEGORIES))
    out = {}
    for s in progress(range(cfg.things_subjects), desc="THINGS-EEG2 subjects", leave=False):
        srng = rng_for(seed, "things_subject", s)
        cat_patterns = 0.75 * shared_patterns + 0.25 * _smooth_patterns(srng, len(CATEGORIES))
        within_pattern = _smooth_patterns(srng, 1)[0]
        early_amp = 1.2 * (np.outer(c_left, w_left_field) + np.outer(c_right, w_right_field))  # (n_img, 17)
        late_amp = 1.0 * cat_patterns[cat_idx] + 0.3 * np.outer(exemplar, within_pattern)
        erp = early_amp[:, :, None] * early_tc + late_amp[:, :, None] * late_tc  # (n_img, 17, 100)
        sub = root / "eeg_dataset" / "preprocessed_data" / f"sub-{s + 1:02d}"
        sub.mkdir(parents=True)
        for name, mask, reps in (("training", tr, cfg.things_train_reps), ("test", te, cfg.things_test_reps)):
            data = _trials(erp[mask], reps, rng_for(seed, "things_noise", s, int(name == "test")))
            np.save(sub / f"preprocessed_eeg_{name}.npy",
                    {"preprocessed_eeg_data": data, "ch_names": list(CH_NAMES), "times": TIMES.copy()}, allow_pickle=True)
        np.savez_compressed(
            gt_dir / f"things_eeg2_sub-{s + 1:02d}.npz",
            erp_training=erp[tr].astype(np.float32), erp_test=erp[te].astype(np.float32),
            category_training=cat_idx[tr], category_test=cat_idx[te], categories=np.array(CATEGORIES),
            early_amplitude_training=early_amp[tr].astype(np.float32), early_amplitude_test=early_amp[te].astype(np.float32),
            late_amplitude_training=late_amp[tr].astype(np.float32), late_amplitude_test=late_amp[te].astype(np.float32),
            early_timecourse=early_tc, late_timecourse=late_tc, category_patterns=cat_patterns,
            ch_names=np.array(CH_NAMES), times=TIMES, noise_sd=np.float64(1.0),
        )
        out[f"sub-{s + 1:02d}"] = {"training": (int(tr.sum()), cfg.things_train_reps), "test": (int(te.sum()), cfg.things_test_reps)}
    return {"subjects": cfg.things_subjects, "train_concepts": len(train_c), "test_concepts": len(test_c), "data": out}


def _smooth_patterns(rng, n: int) -> np.ndarray:
    """n spatially smooth channel patterns (sum of two signed Gaussian bumps), unit RMS, (n, 17)."""
    pats = np.zeros((n, len(CH_NAMES)))
    for k in range(n):
        for _ in range(2):
            c = rng.uniform([-1, -1], [1, 0.1])
            pats[k] += rng.choice([-1, 1]) * np.exp(-((CH_POS - c) ** 2).sum(1) / 0.3)
        pats[k] /= np.sqrt((pats[k] ** 2).mean()) + 1e-12
    return pats


def _trials(erp: np.ndarray, reps: int, rng) -> np.ndarray:
    """Single trials (n_cond, reps, 17, 100) float64: ERP + temporally smooth unit noise, baseline-corrected."""
    n = erp.shape[0]
    white = rng.standard_normal((n, reps, erp.shape[1], erp.shape[2]))
    noise = np.empty_like(white)
    phi = 0.5
    noise[..., 0] = white[..., 0]
    for t in range(1, white.shape[-1]):
        noise[..., t] = phi * noise[..., t - 1] + np.sqrt(1 - phi**2) * white[..., t]
    data = erp[:, None] + noise
    data -= data[..., TIMES < 0].mean(-1, keepdims=True)  # baseline correction to the pre-stimulus interval
    return data
