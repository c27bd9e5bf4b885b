# Brain-aligned training: ReAlnet-fMRI (one model per subject) and its controls, all from one initial backbone;
# NeuroFusionNet (one model over several subjects, scored on a held-out subject) and its shuffled-pairs control.
# Every run writes stimuli.parquet (what it was trained and selected on); features_trained copies it into the
# model's feature cache, and every evaluation refuses stimuli listed there (brainalign.heldout).


rule initial_backbone:
    output:
        L.initial_backbone(),
    params:
        preset=TRAIN["preset"],
        code=code_fingerprint("train"),
    log:
        L.log("training", "initial_backbone"),
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "brainalign train initial-backbone --config {params.preset} --out {output} > {log} 2>&1"


rule train:
    input:
        root=dataset_root("nsd"),
        store=store_path("nsd", "{subject}"),
        initial=L.initial_backbone(),
    output:
        directory(L.realnet_run(subject_folder("nsd", "{subject}"), "{variant}")),
    params:
        stimuli=f"nsd:{NSD['root']}",
        preset=TRAIN["preset"],
        beta="" if TRAIN["beta"] is None else f"--beta {TRAIN['beta']}",
        control=lambda wc: TRAIN_CONTROL[wc.variant],
        keep="--keep-checkpoints" if TRAIN.get("keep_checkpoints") else "",
        launch=train_launcher(TRAIN["gpus"]),
        code=code_fingerprint("train"),
    log:
        L.log("training", "realnet_subj{subject}_{variant}"),
    benchmark:
        L.benchmark("training", "realnet_subj{subject}_{variant}")
    threads: 2
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=TRAIN["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.launch} train realnet --store {input.store} --stimuli {params.stimuli} --out {output} "
        "--config {params.preset} {params.beta} --control {params.control} --weights {input.initial} {params.keep} "
        "> {log} 2>&1"


rule train_neurofusion:
    input:
        root=dataset_root("nsd"),
        stores=[store_path("nsd", s) for s in NF_SUBJECTS],
        heldout=[store_path("nsd", NF_HELDOUT)] if NF_HELDOUT else [],
    output:
        directory(L.neurofusion_run()),
    params:
        stimuli=f"nsd:{NSD['root']}",
        preset=NEUROFUSION.get("preset", "small"),
        stores=lambda wc, input: " ".join(f"--store {s}" for s in input.stores),
        control="none",
        keep="--keep-checkpoints" if TRAIN.get("keep_checkpoints") else "",
        launch=train_launcher(TRAIN["gpus"]),
        code=code_fingerprint("train"),
    log:
        L.log("training", "neurofusion"),
    benchmark:
        L.benchmark("training", "neurofusion")
    threads: 2
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=TRAIN["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.launch} train neurofusion {params.stores} --heldout-store {input.heldout} "
        "--stimuli {params.stimuli} --out {output} --config {params.preset} --control {params.control} {params.keep} "
        "> {log} 2>&1"


use rule train_neurofusion as train_neurofusion_control with:
    output:
        directory(L.neurofusion_control_run("{control}")),
    wildcard_constraints:
        control="shuffled",
    params:
        stimuli=f"nsd:{NSD['root']}",
        preset=NEUROFUSION.get("preset", "small"),
        stores=lambda wc, input: " ".join(f"--store {s}" for s in input.stores),
        control=lambda wc: wc.control,
        keep="--keep-checkpoints" if TRAIN.get("keep_checkpoints") else "",
        launch=train_launcher(TRAIN["gpus"]),
        code=code_fingerprint("train"),
    log:
        L.log("training", "neurofusion_{control}"),
    benchmark:
        L.benchmark("training", "neurofusion_{control}")


rule features_trained:
    """Features of trained backbones (and of their common initial backbone) through the same cache code."""
    input:
        root=lambda wc: dataset_root(wc.stimset),
        run=lambda wc: trained_run(wc.trained),
        lists=lambda wc: [L.stimulus_list(wc.stimset)] if wc.stimset in STIMSET_ROOTS else [],
    output:
        directory(L.feature_cache("{stimset}", "{trained}")),
    wildcard_constraints:
        trained=r"cornet_s-initial|realnet-subj[0-9]+-(aligned|beta0|shuffled)|neurofusion-(shuffled-)?backbone",
        stimset="nsd|things_eeg2",
    params:
        run=FEAT_RUN,
        spec=lambda wc: STIMULUS_SPECS[wc.stimset],
        ids=lambda wc, input: f"--ids {input.lists[0]}" if input.lists else "",
        checkpoint=lambda wc: trained_checkpoint(wc.trained),
        layers=" ".join(TRAIN["feature_layers"]),
        reduce=TRAIN["feature_reduce"],
        code=code_fingerprint("features"),
    log:
        L.log("features", "{stimset}_{trained}"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "brainalign features --stimuli {params.spec} {params.ids} --model {params.checkpoint} "
        "--layers {params.layers} --reduce {params.reduce} {params.run} --out {output} --no-progress > {log} 2>&1"
