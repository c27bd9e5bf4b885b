# Shared names, wildcards and targets. Everything here is cheap to evaluate (it runs at every start).
from brainalign.provenance import code_fingerprint

R = config["results"]
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

wildcard_constraints:
    subject=r"[0-9]+",
    model=r"[A-Za-z0-9_]+",
    stimset=r"nsd|bold5000|things_eeg2|unseen",
    variant=r"aligned|beta0|shuffled",


def dataset_root(name):
    """Input for a rule that reads a dataset root: the simulator's output when simulating."""
    return f"{R}/simulated" if config["simulate"]["enabled"] else []


def all_targets():
    """Everything the pipeline produces for the configured datasets (the inputs of the report)."""
    models = FEATURE_MODELS + trained_models()
    targets = expand(f"{R}/encoding/nsd/subj{{s}}/{{m}}/nsd-shared", s=NSD_SUBJECTS, m=models)
    targets.append(f"{R}/rsa/fmri")
    if B5K:
        targets += expand(
            f"{R}/synthetic/bold5000/CSI{{s}}/{{split}}/evaluation",
            s=B5K_SUBJECTS,
            split=config["synthetic"]["splits"],
        )
    if EEG:
        targets.append(f"{R}/rsa/eeg")
    targets += expand(f"{R}/training/realnet/subj{{s}}/{{v}}", s=TRAIN_SUBJECTS, v=TRAIN_VARIANTS)
    return targets
