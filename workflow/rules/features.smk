# CNN feature cache: one zarr cache per (stimulus set, model), all layers from one forward pass.

rule stimulus_lists:
    """The dataset's whole design (every subject's images), so adding a subject leaves feature caches alone."""
    input:
        lambda wc: dataset_root(wc.stimset),
    output:
        ids=f"{R}/features/{{stimset}}/stimuli.txt",
        train_ids=f"{R}/features/{{stimset}}/train_stimuli.txt",
    wildcard_constraints:
        stimset="nsd|bold5000",
    params:
        root=lambda wc: STIMSET_ROOTS[wc.stimset],
    log:
        f"{R}/logs/features/{{stimset}}_stimulus_lists.log",
    run:
        from brainalign.stimulus_lists import write_stimulus_lists

        write_stimulus_lists(wildcards.stimset, params.root, output.ids, output.train_ids)


rule features:
    input:
        root=lambda wc: dataset_root(wc.stimset),
        lists=lambda wc: [f"{R}/features/{wc.stimset}/stimuli.txt", f"{R}/features/{wc.stimset}/train_stimuli.txt"]
        if wc.stimset in STIMSET_ROOTS
        else [],
    output:
        directory(f"{R}/features/{{stimset}}/{{model}}.zarr"),
    wildcard_constraints:
        stimset="nsd|bold5000|things_eeg2",
    params:
        run=FEAT_RUN,
        spec=lambda wc: STIMULUS_SPECS[wc.stimset],
        options=_feature_options,
        seed=SEED,
        code=code_fingerprint("features", "models", "stimuli.py"),
    log:
        f"{R}/logs/features/{{stimset}}_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{stimset}}_{{model}}.tsv"
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
