# RSA: model layers vs ROIs of every subject (within / across subjects), and time-resolved vs EEG;
# object-dimension analysis of the model layers on the NSD images.


rule rsa_dimensions:
    """Per-image categories of the simulated NSD images: the object dimensions of the demo's dimension analysis."""
    input:
        dataset_root("nsd"),
    output:
        L.nsd_category_table(),
    params:
        code=code_fingerprint("categories"),
    log:
        L.log("rsa", "nsd_categories"),
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign categories --simulated {input} --dataset nsd --out {output} > {log} 2>&1"


rule rsa_fmri:
    input:
        features=lambda wc: [L.feature_cache("nsd", m) for m in rsa_models()],
        stores=[store_path("nsd", s) for s in NSD_SUBJECTS],
        dimensions=rsa_dimension_table(),
    output:
        directory(L.rsa("fmri")),
    params:
        names=" ".join(rsa_models()),
        rois=" ".join(RSA["rois"]),
        trained_on=rsa_within_subject(),
        seed=SEED,
        rdm=rsa_rdm_options(),
        dimensions=lambda wc, input: f"--dimensions {input.dimensions}" if input.dimensions else "",
        comparison=RSA["comparison"],
        bootstrap=RSA["bootstrap"],
        compare=f"--compare {comparison_pairs_option()} --layer-choice-max {RSA.get('layer_choice_max', 1000)}"
        if realnet_comparisons()
        else "",
        code=code_fingerprint("rsa"),
    log:
        L.log("rsa", "fmri"),
    benchmark:
        L.benchmark("rsa", "fmri")
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign rsa --features {input.features} --model-names {params.names} --stores {input.stores} "
        "--rois {params.rois} --trained-on {params.trained_on} {params.rdm} {params.dimensions} {params.compare} "
        "--method {params.comparison} --n-boot {params.bootstrap} --seed {params.seed} --out {output} > {log} 2>&1"


rule rsa_eeg:
    input:
        features=lambda wc: [L.feature_cache("things_eeg2", m) for m in rsa_models()],
        stores=[store_path("things_eeg2", s) for s in EEG_SUBJECTS],
    output:
        directory(L.rsa("eeg")),
    params:
        names=" ".join(rsa_models()),
        seed=SEED,
        rdm=rsa_rdm_options(),
        comparison=RSA["comparison"],
        bootstrap=RSA["bootstrap"],
        permutations=RSA["permutations"],
        code=code_fingerprint("rsa"),
    log:
        L.log("rsa", "eeg"),
    benchmark:
        L.benchmark("rsa", "eeg")
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign rsa --features {input.features} --model-names {params.names} --eeg-stores {input.stores} "
        "{params.rdm} --method {params.comparison} --n-boot {params.bootstrap} "
        "--n-permutations {params.permutations} --seed {params.seed} --out {output} > {log} 2>&1"
