# Report: findings stated against the three papers, figures and tables; also feeds `snakemake --report`.


rule report:
    input:
        all_targets(),
    output:
        summary=report(L.report_summary(), category="Summary"),
        figures=report(
            directory(L.report_figures()),
            patterns=["{name}.png"],
            category="Figures",
            labels={"figure": "{name}"},
        ),
        findings=L.report_findings(),
        alignment=L.report_alignment(),
    params:
        results=lambda wc, output: parent_folder(output.summary, 2),
        out=lambda wc, output: parent_folder(output.summary),
        code=code_fingerprint("report"),
    log:
        L.log("report"),
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "brainalign report --results {params.results} --out {params.out} > {log} 2>&1"


rule manifest:
    """Resolved config, versions, commit, seed and checksums: what a shared results folder needs."""
    input:
        L.report_summary(),
    output:
        L.manifest(),
    params:
        results=lambda wc, output: parent_folder(output[0]),
        config=manifest_config(),
        code=code_fingerprint("manifest"),
    log:
        L.log("manifest"),
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign manifest {params.results} --config-json {params.config:q} > {log} 2>&1"
