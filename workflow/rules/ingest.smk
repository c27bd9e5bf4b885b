# Ingestion: real dataset layouts -> ROI-masked zarr voxel stores (one job per subject).


rule ingest_nsd:
    input:
        dataset_root("nsd"),
    output:
        directory(store_path("nsd", "{subject}")),
    params:
        root=NSD["root"],
        options=" ".join(
            [
                f"--beta-version {NSD['beta_version']}",
                f"--space {NSD['space']}",
                f"--format {NSD['input_format']}",
                f"--mask {NSD['mask']}",
                f"--rois {','.join(NSD['atlases'])}" if NSD.get("atlases") else "",
                "" if NSD["zscore"] else "--no-zscore",
            ]
        ),
        code=code_fingerprint("ingest"),
    log:
        L.log("ingest", "nsd_subj{subject}"),
    benchmark:
        L.benchmark("ingest", "nsd_subj{subject}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign ingest nsd --root {params.root} --subject {wildcards.subject} --out {output} "
        "{params.options} > {log} 2>&1"


rule ingest_bold5000:
    input:
        dataset_root("bold5000"),
    output:
        directory(store_path("bold5000", "{subject}")),
    params:
        root=B5K["root"] if B5K else "",
        options="" if (B5K or {}).get("zscore", True) else "--no-zscore",
        code=code_fingerprint("ingest"),
    log:
        L.log("ingest", "bold5000_CSI{subject}"),
    benchmark:
        L.benchmark("ingest", "bold5000_CSI{subject}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign ingest bold5000 --root {params.root} --subject {wildcards.subject} --out {output} "
        "{params.options} > {log} 2>&1"


rule ingest_things_eeg2:
    input:
        dataset_root("things_eeg2"),
    output:
        directory(store_path("things_eeg2", "{subject}")),
    params:
        root=EEG["root"] if EEG else "",
        code=code_fingerprint("ingest"),
    log:
        L.log("ingest", "things_eeg2_sub-{subject}"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign ingest things-eeg2 --root {params.root} --subject {wildcards.subject} --out {output} "
        "> {log} 2>&1"
