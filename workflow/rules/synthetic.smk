# Synthetic fMRI for unseen images (Delavari, Sigal & Oruc 2025): encoder + new images -> synthetic store,
# then its evaluations against real repetitions and real responses of unseen images / categories.

rule features_unseen:
    """Features of images never shown in the scanner, reduced with the PCA fitted on the encoder's training images."""
    input:
        root=dataset_root("bold5000"),
        pca_from=f"{R}/features/{SYN['dataset']}/{{model}}.zarr",
    output:
        directory(f"{R}/features/unseen/{{model}}.zarr"),
    params:
        run=FEAT_RUN,
        folder=SYN.get("unseen_images") or f"{R}/simulated/unseen_images",
        options=lambda wc, input: f"--reduce pca --pca-from {input.pca_from}"
        if FEAT["models"][wc.model].get("reduce") == "pca"
        else f"--reduce {FEAT['models'][wc.model].get('reduce', 'pool')}",
        weights=lambda wc: FEAT["models"][wc.model]["weights"],
        layers=lambda wc: " ".join(FEAT["models"][wc.model]["layers"]),
        seed=SEED,
        code=code_fingerprint("features", "models", "stimuli.py"),
    log:
        f"{R}/logs/features/unseen_{{model}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "brainalign features --stimuli folder:{params.folder} --model {wildcards.model} --weights {params.weights} "
        "--layers {params.layers} {params.options} --seed {params.seed} {params.run} "
        "--out {output} --no-progress > {log} 2>&1"


rule synthesize:
    """Synthetic responses to the real images (for the comparison with real repetitions) and to unseen images."""
    input:
        encoder=f"{R}/encoding/{SYN['dataset']}/{{sub}}/{ENC['model']}/{{split}}",
        features=[f"{R}/features/{SYN['dataset']}/{ENC['model']}.zarr", f"{R}/features/unseen/{ENC['model']}.zarr"],
    output:
        directory(f"{R}/synthetic/{SYN['dataset']}/{{sub}}/{{split}}/synthetic.zarr"),
    params:
        code=code_fingerprint("synthetic", "encoding", "store.py"),
    log:
        f"{R}/logs/synthetic/{{sub}}_{{split}}_synthesize.log",
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign synthesize --encoder {input.encoder} --features {input.features} --out {output} > {log} 2>&1"


rule synthetic_evaluate:
    input:
        encoder=f"{R}/encoding/{SYN['dataset']}/{{sub}}/{ENC['model']}/{{split}}",
        store=lambda wc: store_path(SYN["dataset"], wc.sub),
        synthetic=f"{R}/synthetic/{SYN['dataset']}/{{sub}}/{{split}}/synthetic.zarr",
        categories=category_table(),
    output:
        directory(f"{R}/synthetic/{SYN['dataset']}/{{sub}}/{{split}}/evaluation"),
    params:
        n_per_class=" ".join(map(str, SYN["samples_per_class"])),
        permutations=SYN["permutations"],
        seed=SEED,
        code=code_fingerprint("synthetic", "encoding", "store.py"),
    log:
        f"{R}/logs/synthetic/{{sub}}_{{split}}_evaluate.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign synthesize --evaluate --encoder {input.encoder} --store {input.store} "
        "--synthetic {input.synthetic} --categories {input.categories} --n-per-class {params.n_per_class} "
        "--permutations {params.permutations} --seed {params.seed} --out {output} > {log} 2>&1"
