# Brain-aligned training: ReAlnet-fMRI (one model per subject) and its controls, all from one initial backbone.

TRAIN = config["training"]
TRAIN_CONTROL = {"aligned": "none", "beta0": "beta0", "shuffled": "shuffled"}


rule initial_backbone:
    output:
        f"{R}/training/realnet/initial_backbone.pt",
    params:
        preset=TRAIN["preset"],
        code=code_fingerprint("training", "models"),
    log:
        f"{R}/logs/training/initial_backbone.log",
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -c 'import sys; from brainalign.training.backbones import export_initial_backbone; "
        "export_initial_backbone(sys.argv[1], sys.argv[2])' {output} {params.preset} > {log} 2>&1"


rule train:
    input:
        root=dataset_root("nsd"),
        store=f"{R}/stores/nsd/subj{{subject}}.zarr",
        initial=f"{R}/training/realnet/initial_backbone.pt",
    output:
        directory(f"{R}/training/realnet/subj{{subject}}/{{variant}}"),
    params:
        stimuli=f"nsd:{NSD['root']}",
        preset=TRAIN["preset"],
        beta=TRAIN["beta"],
        control=lambda wc: TRAIN_CONTROL[wc.variant],
        gpus=TRAIN["gpus"],
        code=code_fingerprint("training", "models", "stimuli.py", "store.py"),
    log:
        f"{R}/logs/training/realnet_subj{{subject}}_{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/training/realnet_subj{{subject}}_{{variant}}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=TRAIN["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        # torchrun with every GPU SLURM gave the job; plain CPU/1-GPU run otherwise.
        "N=${{SLURM_GPUS_ON_NODE:-{params.gpus}}}; "
        'if [ "$N" -gt 1 ]; then L="torchrun --standalone --nproc_per_node=$N -m brainalign"; else L=brainalign; fi; '
        "$L train realnet --store {input.store} --stimuli {params.stimuli} --out {output} --config {params.preset} "
        "--beta {params.beta} --control {params.control} --weights {input.initial} > {log} 2>&1"


def trained_checkpoint(name):
    """'cornet_s-initial' or 'realnet-subj01-aligned' -> the checkpoint file the feature cache loads."""
    if name == "cornet_s-initial":
        return f"{R}/training/realnet/initial_backbone.pt"
    _, subj, variant = name.split("-")
    return f"{R}/training/realnet/{subj}/{variant}/backbone.pt"


def trained_models():
    """Feature-cache names of the untrained baseline and of every trained model and control."""
    return ["cornet_s-initial"] + [f"realnet-subj{s}-{v}" for s in TRAIN_SUBJECTS for v in TRAIN_VARIANTS]


rule features_trained:
    """Features of trained backbones (and of their common initial backbone) through the same cache code."""
    input:
        root=lambda wc: dataset_root(wc.stimset),
        run=lambda wc: f"{R}/training/realnet/initial_backbone.pt"
        if wc.trained == "cornet_s-initial"
        else f"{R}/training/realnet/{wc.trained.split('-')[1]}/{wc.trained.split('-')[2]}",
        lists=lambda wc: [f"{R}/features/{wc.stimset}/stimuli.txt"] if wc.stimset in STIMSET_STORES else [],
    output:
        directory(f"{R}/features/{{stimset}}/{{trained}}.zarr"),
    wildcard_constraints:
        trained=r"cornet_s-initial|realnet-subj[0-9]+-(aligned|beta0|shuffled)",
        stimset="nsd|things_eeg2",
    params:
        spec=lambda wc: STIMULUS_SPECS[wc.stimset],
        ids=lambda wc, input: f"--ids {input.lists[0]}" if input.lists else "",
        checkpoint=lambda wc: trained_checkpoint(wc.trained),
        code=code_fingerprint("features", "models", "stimuli.py"),
    log:
        f"{R}/logs/features/{{stimset}}_{{trained}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "brainalign features --stimuli {params.spec} {params.ids} --model {params.checkpoint} "
        "--layers V1 V2 V4 IT avgpool --reduce pool --device {FEAT[device]} --batch-size {FEAT[batch_size]} "
        "--workers {FEAT[workers]} --out {output} --no-progress > {log} 2>&1"
