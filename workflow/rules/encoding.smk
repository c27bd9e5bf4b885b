# Voxelwise encoding models: features -> voxel responses, alpha per voxel by K-fold CV, scored on test images.


rule categories:
    """Stimulus -> category table for the unseen-category split and the decoding evaluation."""
    input:
        root=dataset_root(SYN["dataset"]),
        table=SYN.get("categories") or [],
        stimuli=category_stimulus_list(),
    output:
        L.category_table(),
    params:
        source=category_source(),
        code=code_fingerprint("categories"),
    log:
        L.log("synthetic", "categories"),
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign categories {params.source} --out {output} > {log} 2>&1"


rule encode:
    input:
        store=lambda wc: L.store(wc.dataset, wc.sub),
        features=L.feature_cache("{dataset}", "{model}"),
        categories=lambda wc: L.category_table() if category_fold(wc.split) is not None else [],
    output:
        directory(L.encoder("{dataset}", "{sub}", "{model}", "{split}")),
    wildcard_constraints:
        dataset="nsd|bold5000",
        sub=r"subj[0-9]+|CSI[0-9]+",
        model=r"[A-Za-z0-9_-]+",
        split="nsd-shared|repeated|unseen-categories-fold[0-9]+",
    params:
        split=encode_split_options,
        alphas=ENC_ALPHAS,
        folds=ENC["folds"],
        solver=ENC["solver"],
        device=ENC["device"],
        banded="--banded" if ENC.get("banded", False) else "",
        seed=SEED,
        code=code_fingerprint("encode"),
    log:
        L.log("encoding", "{dataset}_{sub}_{model}_{split}"),
    benchmark:
        L.benchmark("encoding", "{dataset}_{sub}_{model}_{split}")
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign encode --store {input.store} --features {input.features} {params.split} "
        "--alphas {params.alphas} --folds {params.folds} --solver {params.solver} "
        "--device {params.device} {params.banded} --seed {params.seed} --out {output} > {log} 2>&1"


rule encoding_comparisons:
    """ReAlnet-fMRI against its controls and the initial CORnet-S on every NSD subject: paired stimulus bootstrap of
    the encoders' held-out r (mean over the nsdgeneral voxels)."""
    input:
        encoders=comparison_encoders(),
        stores=[store_path("nsd", s) for s in NSD_SUBJECTS],
    output:
        L.encoding_comparisons("nsd"),
    params:
        pairs=comparison_pairs_option(),
        roi=comparison_roi_option(),
        bootstrap=ENC.get("comparison_bootstrap", 1000),
        seed=SEED,
        code=code_fingerprint("compare-encoders"),
    log:
        L.log("encoding", "comparisons"),
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign compare-encoders --encoders {input.encoders} --stores {input.stores} --pairs {params.pairs} "
        "{params.roi} --n-boot {params.bootstrap} --seed {params.seed} --out {output} > {log} 2>&1"
