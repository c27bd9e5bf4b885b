# Shared names, helper functions and targets (rule files hold rules only). Everything here is cheap to evaluate (it runs at every start).
# Every path under the results folder comes from brainalign.layout (L); every rule's `code` param from the
# package's import graph (brainalign.provenance.code).
from brainalign.layout import UNSEEN_CATEGORIES, ResultsLayout, category_fold, category_fold_split, subject_folder
from brainalign.provenance.code import code_fingerprint

R = config["results"]
L = ResultsLayout(R)
SEED = config["seed"]
NSD = config["datasets"]["nsd"]
B5K = config["datasets"].get("bold5000")
EEG = config["datasets"].get("things_eeg2")

NSD_SUBJECTS = [f"{s:02d}" for s in NSD["subjects"]]
B5K_SUBJECTS = [str(s) for s in B5K["subjects"]] if B5K else []
EEG_SUBJECTS = [f"{s:02d}" for s in EEG["subjects"]] if EEG else []
FEATURE_MODELS = list(config["features"]["models"])
TRAIN_SUBJECTS = [f"{s:02d}" for s in config["training"].get("subjects", NSD["subjects"])]
TRAIN_VARIANTS = ["aligned"] + list(config["training"].get("controls", []))


def parent_folder(path, levels=1):
    """The folder ``levels`` above a path: rule params derived from the rule's own outputs (so that they follow
    the outputs wherever a storage plugin puts them)."""
    return path.rsplit("/", levels)[0]


def dataset_root(name):
    """Input of the jobs that read a dataset root (the simulator's output when simulating, else none)."""
    return L.simulated() if config["simulate"]["enabled"] else []


def simulated_subjects(wildcards=None):
    """The simulator's ``--*-subjects`` options: the preset's counts, raised where the config asks for more.

    Taking the maximum (not the config's largest subject alone) means that adding a subject the preset
    already simulates changes nothing upstream of that subject's own jobs.
    """
    from brainalign.simulate.config import resolve_config

    preset = resolve_config(config["simulate"]["preset"])
    counts = [("nsd", NSD, preset.nsd_subjects), ("b5k", B5K, preset.b5k_subjects),
              ("things", EEG, preset.things_subjects)]
    return " ".join(f"--{name}-subjects {max([n] + ds['subjects'])}" for name, ds, n in counts if ds)


def store_path(dataset, subject):
    """Voxel store of one subject of a dataset; ``subject`` is its number (int, ``"01"`` or a wildcard)."""
    return L.store(dataset, subject_folder(dataset, subject))


def all_targets():
    """Everything the pipeline produces for the configured datasets (the inputs of the report)."""
    models = FEATURE_MODELS + trained_models()
    targets = [L.encoder("nsd", subject_folder("nsd", s), m, "nsd-shared") for s in NSD_SUBJECTS for m in models]
    targets.append(L.rsa("fmri"))
    if realnet_comparisons():
        targets.append(L.encoding_comparisons("nsd"))
    if B5K:
        targets += [L.synthetic_evaluation(SYN["dataset"], subject_folder(SYN["dataset"], s), split)
                    for s in B5K_SUBJECTS for split in synthetic_splits()]
    if EEG:
        targets.append(L.rsa("eeg"))
    targets += [L.realnet_run(subject_folder("nsd", s), v) for s in TRAIN_SUBJECTS for v in TRAIN_VARIANTS]
    if NEUROFUSION["enabled"]:
        targets += [trained_run(name) for name in neurofusion_models()]
    return targets


# --- features ---
FEAT = config["features"]
# how feature extraction runs (device, batching); not what it computes
FEAT_RUN = f"--device {FEAT['device']} --batch-size {FEAT['batch_size']} --workers {FEAT['workers']}"
STIMULUS_SPECS = {
    "nsd": f"nsd:{NSD['root']}",
    "bold5000": f"bold5000:{B5K['root']}" if B5K else None,
    "things_eeg2": f"things-eeg2:{EEG['root']}:test" if EEG else None,
}
# stimulus sets whose feature caches cover a dataset's design (all subjects), listed by rule stimulus_lists
STIMSET_ROOTS = {"nsd": NSD["root"], "bold5000": B5K["root"] if B5K else None}


def model_settings(name):
    """Weights, layers and reduction of a network in ``features.models`` (from ``features.model_settings``)."""
    return FEAT["model_settings"][name]


def _feature_options(wc):
    spec = model_settings(wc.model)
    reduce = spec.get("reduce", "pool")
    if wc.stimset == "things_eeg2" and reduce == "pca":
        reduce = "pool"  # the 200 EEG test images are too few to fit a PCA on, and none may be trained on
    opts = [f"--weights {spec['weights']}", f"--layers {' '.join(spec['layers'])}", f"--reduce {reduce}"]
    if reduce == "pca":
        opts.append(f"--pca-components {spec.get('pca_components', 128)} --pca-fit-images {FEAT['pca_fit_images']} "
                    f"--pca-train-ids {L.train_stimulus_list(wc.stimset)}")
    if wc.stimset in STIMSET_ROOTS:
        opts.append(f"--ids {L.stimulus_list(wc.stimset)}")
    return " ".join(opts)


# --- encoding ---
ENC = config["encoding"]
ENC_ALPHAS = "logspace:{log10_min}:{log10_max}:{n}".format(**ENC["alphas"])


def encode_split_options(wildcards, input):
    """``brainalign encode`` options of an encoder's split: a category fold (``unseen-categories-fold3``) holds out
    the categories of that fold of the leave-``n_test_categories``-out design."""
    fold = category_fold(wildcards.split)
    if fold is None:
        return f"--split {wildcards.split}"
    return (f"--split {UNSEEN_CATEGORIES} --categories {input.categories} "
            f"--n-test-categories {ENC.get('n_test_categories', 2)} --category-fold {fold}")


def realnet_comparisons():
    """(model, baseline) feature-cache names of the paired model comparisons (encoding, RSA, object dimensions):
    every ReAlnet-fMRI against its controls (same code, same images) and against the initial CORnet-S."""
    pairs = []
    for s in TRAIN_SUBJECTS:
        subject = subject_folder("nsd", s)
        aligned = f"realnet-{subject}-aligned"
        pairs += [(aligned, f"realnet-{subject}-{v}") for v in TRAIN_VARIANTS if v != "aligned"]
        pairs.append((aligned, "cornet_s-initial"))
    return pairs


def comparison_pairs_option():
    """The pairs of :func:`realnet_comparisons` as ``MODEL:BASELINE`` words."""
    return " ".join(f"{a}:{b}" for a, b in realnet_comparisons())


def comparison_encoders():
    """The NSD encoders the comparisons read: every compared model on every NSD subject."""
    models = sorted({m for pair in realnet_comparisons() for m in pair})
    return [L.encoder("nsd", subject_folder("nsd", s), m, "nsd-shared") for s in NSD_SUBJECTS for m in models]


def comparison_roi_option():
    """The voxels the encoder comparisons average over: the nsdgeneral ROI when the stores have that atlas."""
    return "--roi nsdgeneral/nsdgeneral" if "nsdgeneral" in NSD.get("atlases", ["nsdgeneral"]) else ""


# --- synthetic ---
SYN = config["synthetic"]


def synthetic_splits():
    """The synthetic stage's evaluation splits: ``repeated``, and for ``unseen-categories`` one split per fold of
    the leave-categories-out design (``unseen-categories-fold0`` ... ``synthetic.category_folds``)."""
    out = []
    for split in SYN["splits"]:
        if split == UNSEEN_CATEGORIES:
            out += [category_fold_split(k) for k in range(SYN.get("category_folds", 10))]
        else:
            out.append(split)
    return out


def unseen_image_folder():
    """Folder of the images never shown in the scanner: ``synthetic.unseen_images``, else the simulator's."""
    return SYN.get("unseen_images") or L.simulated_unseen_images()


def category_stimulus_list():
    """The dataset's stimulus list that a configured category table is checked against (an input of the
    categories job; none with the simulator's categories)."""
    return L.stimulus_list(SYN["dataset"]) if SYN.get("categories") else []


def category_source():
    """Where ``brainalign categories`` takes the synthetic stage's categories from: the configured table (checked
    against every stimulus of the dataset and every unseen image), else the simulator's ground truth (the
    dataset's images and the unseen ones)."""
    if SYN.get("categories"):
        from brainalign.categories import table_requirements

        need = table_requirements(SYN, ENC)
        return (f"--table {SYN['categories']} --stimuli {category_stimulus_list()} "
                f"--unseen-images {unseen_image_folder()} --min-images {need['min_images']} "
                f"--min-categories {need['min_categories']}")
    return f"--simulated {L.simulated()} --dataset {SYN['dataset']} --with-unseen"


# --- rsa ---
RSA = config["rsa"]


def rsa_models():
    """Feature-cache names compared with the brain: configured CNNs, the initial CORnet-S and the trained models."""
    return FEATURE_MODELS + trained_models()


def rsa_rdm_options():
    """``brainalign rsa`` RDM options from the config: brain distance, model distance, crossnobis folds."""
    opts = [f"--rdm-method {RSA['distance']}"]
    if RSA.get("model_distance"):
        opts.append(f"--model-rdm-method {RSA['model_distance']}")
    if RSA["distance"] == "crossnobis" and RSA.get("cv_folds"):
        opts.append(f"--cv-folds {RSA['cv_folds']}")
    return " ".join(opts)


def rsa_within_subject():
    """The NSD subject whose RSA rows are ``within`` (the trained models' own subject): ``rsa.within_subject``,
    else the first training subject."""
    subject = RSA.get("within_subject") or int(TRAIN_SUBJECTS[0])
    return subject_folder("nsd", subject)


def rsa_dimension_table():
    """Object-dimension table of the NSD images: the configured one, else the simulator's categories, else none."""
    if RSA.get("dimensions"):
        return RSA["dimensions"]
    return L.nsd_category_table() if config["simulate"]["enabled"] else []


# --- training ---
TRAIN = config["training"]
TRAIN_CONTROL = {"aligned": "none", "beta0": "beta0", "shuffled": "shuffled"}


def train_launcher(gpus):
    """Start of a training rule's shell command: torchrun over every GPU SLURM gave the job (``gpus`` outside
    SLURM) when that is more than one, else plain ``brainalign``."""
    return ('N=${SLURM_GPUS_ON_NODE:-%d}; if [ "$N" -gt 1 ]; then '
            'L="torchrun --standalone --nproc_per_node=$N -m brainalign"; else L=brainalign; fi; $L' % gpus)


NEUROFUSION = TRAIN.get("neurofusion") or {"enabled": False}
NF_SUBJECTS = [f"{s:02d}" for s in NEUROFUSION.get("subjects", [])] if NEUROFUSION["enabled"] else []
NF_HELDOUT = f"{NEUROFUSION['heldout_subject']:02d}" if NEUROFUSION["enabled"] else None
NF_CONTROLS = list(NEUROFUSION.get("controls", [])) if NEUROFUSION["enabled"] else []


def neurofusion_models():
    """Feature-cache names of NeuroFusionNet's image backbone and of each of its controls' backbones
    ('neurofusion-shuffled-backbone')."""
    if not NEUROFUSION["enabled"]:
        return []
    return ["neurofusion-backbone"] + [f"neurofusion-{c}-backbone" for c in NF_CONTROLS]


def trained_run(name):
    """'cornet_s-initial', 'realnet-subj01-aligned', 'neurofusion-backbone' or 'neurofusion-shuffled-backbone' ->
    the output of the job that made that model."""
    if name == "cornet_s-initial":
        return L.initial_backbone()
    if name == "neurofusion-backbone":
        return L.neurofusion_run()
    if name.startswith("neurofusion-"):
        return L.neurofusion_control_run(name.split("-")[1])
    _, subj, variant = name.split("-")
    return L.realnet_run(subj, variant)


def trained_checkpoint(name):
    """The checkpoint file the feature cache loads for a trained_run() name."""
    run = trained_run(name)
    return run if name == "cornet_s-initial" else L.backbone_weights(run)


def trained_models():
    """Feature-cache names of the untrained baseline, every trained ReAlnet and control, and NeuroFusionNet's
    image backbone and its controls'."""
    realnet = [f"realnet-{subject_folder('nsd', s)}-{v}" for s in TRAIN_SUBJECTS for v in TRAIN_VARIANTS]
    return ["cornet_s-initial"] + realnet + neurofusion_models()


def manifest_config():
    """The resolved config as JSON: what ``brainalign manifest`` records (and a param, so it reruns on a change)."""
    import json

    return json.dumps(config, sort_keys=True)
