from pathlib import Path

# Report: findings stated against the three papers, figures and tables; also feeds `snakemake --report`.


rule report:
    input:
        all_targets(),
    output:
        summary=report(f"{R}/report/summary.md", category="Summary"),
        figures=report(
            directory(f"{R}/report/figures"),
            patterns=["{name}.png"],
            category="Figures",
            labels={"figure": "{name}"},
        ),
        findings=f"{R}/report/findings.parquet",
    params:
        results=lambda wc, output: Path(output.summary).parents[1],
        out=lambda wc, output: Path(output.summary).parent,
        code=code_fingerprint("report"),
    log:
        f"{R}/logs/report.log",
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
        f"{R}/report/summary.md",
    output:
        f"{R}/manifest.json",
    log:
        f"{R}/logs/manifest.log",
    run:
        from brainalign.provenance.manifest import write_manifest

        write_manifest(R, config)
