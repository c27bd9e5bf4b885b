# CNN feature cache: one zarr cache per (stimulus set, model), all layers from one forward pass.

FEAT = config["features"]
STIMULUS_SPECS = {
    "nsd": f"nsd:{NSD['root']}",
    "bold5000": f"bold5000:{B5K['root']}" if B5K else None,
    "things_eeg2": f"things-eeg2:{EEG['root']}:test" if EEG else None,
}
STIMSET_STORES = {
    "nsd": lambda: expand(f"{R}/stores/nsd/subj{{s}}.zarr", s=NSD_SUBJECTS),
    "bold5000": lambda: expand(f"{R}/stores/bold5000/CSI{{s}}.zarr", s=B5K_SUBJECTS),
}


rule stimulus_lists:
    input:
        lambda wc: STIMSET_STORES[wc.stimset](),
    output:
        ids=f"{R}/features/{{stimset}}/stimuli.txt",
        train_ids=f"{R}/features/{{stimset}}/train_stimuli.txt",
    wildcard_constraints:
        stimset="nsd|bold5000",
    log:
        f"{R}/logs/features/{{stimset}}_stimulus_lists.log",
    run:
        from brainalign.stimulus_lists import write_stimulus_lists

        write_stimulus_lists(input, output.ids, output.train_ids)


def _feature_options(wc):
    spec = FEAT["models"][wc.model]
    reduce = spec.get("reduce", "pool")
    if wc.stimset == "things_eeg2" and reduce == "pca":
        reduce = "pool"  # the 200 EEG test images are too few to fit a PCA on, and none may be trained on
    opts = [f"--weights {spec['weights']}", f"--layers {' '.join(spec['layers'])}", f"--reduce {reduce}"]
    if reduce == "pca":
        opts.append(f"--pca-components {spec.get('pca_components', 128)} --pca-train-ids {R}/features/{wc.stimset}/train_stimuli.txt")
    if wc.stimset in STIMSET_STORES:
        opts.append(f"--ids {R}/features/{wc.stimset}/stimuli.txt")
    return " ".join(opts)


rule features:
    input:
        root=lambda wc: dataset_root(wc.stimset),
        lists=lambda wc: [f"{R}/features/{wc.stimset}/stimuli.txt", f"{R}/features/{wc.stimset}/train_stimuli.txt"]
        if wc.stimset in STIMSET_STORES
        else [],
    output:
        directory(f"{R}/features/{{stimset}}/{{model}}.zarr"),
    wildcard_constraints:
        stimset="nsd|bold5000|things_eeg2",
    params:
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
        "--seed {params.seed} --device {FEAT[device]} --batch-size {FEAT[batch_size]} --workers {FEAT[workers]} "
        "--out {output} --no-progress > {log} 2>&1"
