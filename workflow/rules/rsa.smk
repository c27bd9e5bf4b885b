# RSA: model layers vs ROIs of every subject (within / across subjects), and time-resolved vs EEG.

rule rsa_fmri:
    input:
        features=lambda wc: expand(f"{R}/features/nsd/{{m}}.zarr", m=rsa_models()),
        stores=expand(f"{R}/stores/nsd/subj{{s}}.zarr", s=NSD_SUBJECTS),
    output:
        directory(f"{R}/rsa/fmri"),
    params:
        names=" ".join(rsa_models()),
        rois=" ".join(RSA["rois"]),
        trained_on=f"subj{TRAIN_SUBJECTS[0]}",
        seed=SEED,
        distance=RSA["distance"],
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
        "--rois {params.rois} --trained-on {params.trained_on} --rdm-method {params.distance} "
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
        distance=RSA["distance"],
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
        "--rdm-method {params.distance} --method {params.comparison} --n-boot {params.bootstrap} "
        "--n-permutations {params.permutations} --seed {params.seed} --out {output} > {log} 2>&1"
