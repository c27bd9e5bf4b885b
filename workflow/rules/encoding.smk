# Voxelwise encoding models: features -> voxel responses, alpha per voxel by K-fold CV, scored on test images.

# dataset -> (store path pattern by subject directory name, default split)
rule categories:
    """Stimulus -> category table for the unseen-category split and the decoding evaluation."""
    input:
        dataset_root("bold5000"),
    output:
        f"{R}/synthetic/categories.parquet",
    params:
        table=config["synthetic"].get("categories"),
    log:
        f"{R}/logs/synthetic/categories.log",
    run:
        import shutil

        from brainalign.stimulus_lists import simulated_category_table

        if params.table:
            shutil.copyfile(params.table, output[0])
        else:
            simulated_category_table(input[0], output[0])


rule encode:
    input:
        store=lambda wc: store_path(wc.dataset, wc.sub),
        features=f"{R}/features/{{dataset}}/{{model}}.zarr",
        categories=lambda wc: category_table() if wc.split == "unseen-categories" else [],
    output:
        directory(f"{R}/encoding/{{dataset}}/{{sub}}/{{model}}/{{split}}"),
    wildcard_constraints:
        dataset="nsd|bold5000",
        sub=r"subj[0-9]+|CSI[0-9]+",
        model=r"[A-Za-z0-9_-]+",
        split="nsd-shared|repeated|unseen-categories",
    params:
        categories=lambda wc, input: f"--categories {input.categories} --n-test-categories 2"
        if wc.split == "unseen-categories"
        else "",
        alphas=ENC_ALPHAS,
        folds=ENC["folds"],
        solver=ENC["solver"],
        device=ENC["device"],
        banded="--banded" if ENC.get("banded", False) else "",
        seed=SEED,
        code=code_fingerprint("encoding", "store.py", "noise_ceiling.py"),
    log:
        f"{R}/logs/encoding/{{dataset}}_{{sub}}_{{model}}_{{split}}.log",
    benchmark:
        f"{R}/benchmarks/encoding/{{dataset}}_{{sub}}_{{model}}_{{split}}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign encode --store {input.store} --features {input.features} --split {wildcards.split} "
        "{params.categories} --alphas {params.alphas} --folds {params.folds} --solver {params.solver} "
        "--device {params.device} {params.banded} --seed {params.seed} --out {output} > {log} 2>&1"
