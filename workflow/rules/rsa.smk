# RSA: model layers vs ROIs of every subject (within / across subjects), and time-resolved vs EEG.

RSA = config["rsa"]


def rsa_models():
    """Feature-cache names compared with the brain: configured CNNs, the initial CORnet-S and the trained models."""
    return FEATURE_MODELS + trained_models()


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
        "--rois {params.rois} --trained-on {params.trained_on} --rdm-method {RSA[distance]} --method {RSA[comparison]} "
        "--n-boot {RSA[bootstrap]} --seed {params.seed} --out {output} > {log} 2>&1"


rule rsa_eeg:
    input:
        features=lambda wc: expand(f"{R}/features/things_eeg2/{{m}}.zarr", m=rsa_models()),
        stores=expand(f"{R}/stores/things_eeg2/sub-{{s}}.zarr", s=EEG_SUBJECTS),
    output:
        directory(f"{R}/rsa/eeg"),
    params:
        names=" ".join(rsa_models()),
        seed=SEED,
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
        "--rdm-method {RSA[distance]} --method {RSA[comparison]} --n-boot {RSA[bootstrap]} "
        "--n-permutations {RSA[permutations]} --seed {params.seed} --out {output} > {log} 2>&1"
