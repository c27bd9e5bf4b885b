# Brain-aligned training: ReAlnet-fMRI (one model per subject) and its controls, all from one initial backbone;
# NeuroFusionNet (one model over several subjects, scored on a held-out subject).

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
        beta="" if TRAIN["beta"] is None else f"--beta {TRAIN['beta']}",
        control=lambda wc: TRAIN_CONTROL[wc.variant],
        launch=train_launcher(TRAIN["gpus"]),
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
        "{params.launch} train realnet --store {input.store} --stimuli {params.stimuli} --out {output} "
        "--config {params.preset} {params.beta} --control {params.control} --weights {input.initial} > {log} 2>&1"


rule train_neurofusion:
    input:
        root=dataset_root("nsd"),
        stores=[store_path("nsd", f"subj{s}") for s in NF_SUBJECTS],
        heldout=[store_path("nsd", f"subj{NF_HELDOUT}")] if NF_HELDOUT else [],
    output:
        directory(f"{R}/training/neurofusion"),
    params:
        stimuli=f"nsd:{NSD['root']}",
        preset=NEUROFUSION.get("preset", "small"),
        stores=lambda wc, input: " ".join(f"--store {s}" for s in input.stores),
        launch=train_launcher(TRAIN["gpus"]),
        code=code_fingerprint("training", "models", "stimuli.py", "store.py"),
    log:
        f"{R}/logs/training/neurofusion.log",
    benchmark:
        f"{R}/benchmarks/training/neurofusion.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=TRAIN["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.launch} train neurofusion {params.stores} --heldout-store {input.heldout} "
        "--stimuli {params.stimuli} --out {output} --config {params.preset} > {log} 2>&1"


rule features_trained:
    """Features of trained backbones (and of their common initial backbone) through the same cache code."""
    input:
        root=lambda wc: dataset_root(wc.stimset),
        run=lambda wc: trained_run(wc.trained),
        lists=lambda wc: [f"{R}/features/{wc.stimset}/stimuli.txt"] if wc.stimset in STIMSET_ROOTS else [],
    output:
        directory(f"{R}/features/{{stimset}}/{{trained}}.zarr"),
    wildcard_constraints:
        trained=r"cornet_s-initial|realnet-subj[0-9]+-(aligned|beta0|shuffled)|neurofusion-backbone",
        stimset="nsd|things_eeg2",
    params:
        run=FEAT_RUN,
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
        "--layers V1 V2 V4 IT avgpool --reduce pool {params.run} --out {output} --no-progress > {log} 2>&1"
