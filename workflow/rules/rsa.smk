# RSA: model layers vs ROIs of every subject (within / across subjects), and time-resolved vs EEG;
# object-dimension analysis of the model layers on the NSD images.


rule rsa_dimensions:
    """Per-image categories of the simulated NSD images: the object dimensions of the demo's dimension analysis."""
    input:
        dataset_root("nsd"),
    output:
        f"{R}/rsa/nsd_categories.parquet",
    log:
        f"{R}/logs/rsa/nsd_categories.log",
    run:
        from brainalign.rsa.dimension_tables import simulated_nsd_categories

        simulated_nsd_categories(input[0], output[0])


rule rsa_fmri:
    input:
        features=lambda wc: expand(f"{R}/features/nsd/{{m}}.zarr", m=rsa_models()),
        stores=expand(f"{R}/stores/nsd/subj{{s}}.zarr", s=NSD_SUBJECTS),
        dimensions=rsa_dimension_table(),
    output:
        directory(f"{R}/rsa/fmri"),
    params:
        names=" ".join(rsa_models()),
        rois=" ".join(RSA["rois"]),
        trained_on=f"subj{TRAIN_SUBJECTS[0]}",
        seed=SEED,
        rdm=rsa_rdm_options(),
        dimensions=lambda wc, input: f"--dimensions {input.dimensions}" if input.dimensions else "",
        comparison=RSA["comparison"],
        bootstrap=RSA["bootstrap"],
        code=code_fingerprint("rsa", "store.py", "features"),
    log:
        f"{R}/logs/rsa/fmri.log",
    benchmark:
        f"{R}/benchmarks/rsa/fmri.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign rsa --features {input.features} --model-names {params.names} --stores {input.stores} "
        "--rois {params.rois} --trained-on {params.trained_on} {params.rdm} {params.dimensions} "
        "--method {params.comparison} --n-boot {params.bootstrap} --seed {params.seed} --out {output} > {log} 2>&1"


rule rsa_eeg:
    input:
        features=lambda wc: expand(f"{R}/features/things_eeg2/{{m}}.zarr", m=rsa_models()),
        stores=expand(f"{R}/stores/things_eeg2/sub-{{s}}.zarr", s=EEG_SUBJECTS),
    output:
        directory(f"{R}/rsa/eeg"),
    params:
        names=" ".join(rsa_models()),
        seed=SEED,
        rdm=rsa_rdm_options(),
        comparison=RSA["comparison"],
        bootstrap=RSA["bootstrap"],
        permutations=RSA["permutations"],
        code=code_fingerprint("rsa", "store.py", "features"),
    log:
        f"{R}/logs/rsa/eeg.log",
    benchmark:
        f"{R}/benchmarks/rsa/eeg.tsv"
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
