# Synthetic fMRI for unseen images (Delavari, Sigal & Oruc 2025): encoder + new images -> synthetic store,
# then its evaluations against real repetitions and real responses of unseen images / categories.


rule features_unseen:
    """Features of images never shown in the scanner, reduced with the PCA fitted on the encoder's training images."""
    input:
        root=dataset_root(SYN["dataset"]),
        pca_from=L.feature_cache(SYN["dataset"], "{model}"),
    output:
        directory(L.feature_cache("unseen", "{model}")),
    params:
        run=FEAT_RUN,
        folder=unseen_image_folder(),
        options=lambda wc, input: f"--reduce pca --pca-from {input.pca_from}"
        if model_settings(wc.model).get("reduce") == "pca"
        else f"--reduce {model_settings(wc.model).get('reduce', 'pool')}",
        weights=lambda wc: model_settings(wc.model)["weights"],
        layers=lambda wc: " ".join(model_settings(wc.model)["layers"]),
        seed=SEED,
        code=code_fingerprint("features"),
    log:
        L.log("features", "unseen_{model}"),
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
        encoder=L.encoder(SYN["dataset"], "{sub}", ENC["model"], "{split}"),
        features=[L.feature_cache(SYN["dataset"], ENC["model"]), L.feature_cache("unseen", ENC["model"])],
    output:
        directory(L.synthetic_store(SYN["dataset"], "{sub}", "{split}")),
    params:
        code=code_fingerprint("synthesize"),
    log:
        L.log("synthetic", "{sub}_{split}_synthesize"),
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign synthesize generate --encoder {input.encoder} --features {input.features} --out {output} "
        "> {log} 2>&1"


rule synthetic_evaluate:
    input:
        encoder=L.encoder(SYN["dataset"], "{sub}", ENC["model"], "{split}"),
        store=lambda wc: L.store(SYN["dataset"], wc.sub),
        synthetic=L.synthetic_store(SYN["dataset"], "{sub}", "{split}"),
        categories=L.category_table(),
    output:
        directory(L.synthetic_evaluation(SYN["dataset"], "{sub}", "{split}")),
    params:
        n_per_class=" ".join(map(str, SYN["samples_per_class"])),
        declared=SYN.get("decoding_samples_per_class", 10),
        permutations=SYN["permutations"],
        seed=SEED,
        code=code_fingerprint("synthesize"),
    log:
        L.log("synthetic", "{sub}_{split}_evaluate"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign synthesize evaluate --encoder {input.encoder} --store {input.store} "
        "--synthetic {input.synthetic} --categories {input.categories} --n-per-class {params.n_per_class} "
        "--declared-n-per-class {params.declared} "
        "--permutations {params.permutations} --seed {params.seed} --out {output} > {log} 2>&1"
