# CNN feature cache: one zarr cache per (stimulus set, model), all layers from one forward pass.


rule stimulus_lists:
    """The dataset's whole design (every subject's images), so adding a subject leaves feature caches alone."""
    input:
        lambda wc: dataset_root(wc.stimset),
    output:
        ids=L.stimulus_list("{stimset}"),
        train_ids=L.train_stimulus_list("{stimset}"),
    wildcard_constraints:
        stimset="nsd|bold5000",
    params:
        root=lambda wc: STIMSET_ROOTS[wc.stimset],
        code=code_fingerprint("stimulus-lists"),
    log:
        L.log("features", "{stimset}_stimulus_lists"),
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign stimulus-lists --dataset {wildcards.stimset} --root {params.root} --out {output.ids} "
        "--train-out {output.train_ids} > {log} 2>&1"


rule features:
    input:
        root=lambda wc: dataset_root(wc.stimset),
        lists=lambda wc: [L.stimulus_list(wc.stimset), L.train_stimulus_list(wc.stimset)]
        if wc.stimset in STIMSET_ROOTS
        else [],
    output:
        directory(L.feature_cache("{stimset}", "{model}")),
    wildcard_constraints:
        stimset="nsd|bold5000|things_eeg2",
    params:
        run=FEAT_RUN,
        spec=lambda wc: STIMULUS_SPECS[wc.stimset],
        options=_feature_options,
        seed=SEED,
        code=code_fingerprint("features"),
    log:
        L.log("features", "{stimset}_{model}"),
    benchmark:
        L.benchmark("features", "{stimset}_{model}")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "brainalign features --stimuli {params.spec} --model {wildcards.model} {params.options} "
        "--seed {params.seed} {params.run} "
        "--out {output} --no-progress > {log} 2>&1"
