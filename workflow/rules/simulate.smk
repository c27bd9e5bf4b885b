# Ground-truth simulator: writes NSD / BOLD5000 / THINGS-EEG2 trees in their real layouts (the embedded default).


rule simulate:
    output:
        directory(L.simulated()),
    params:
        preset=config["simulate"]["preset"],
        seed=SEED,
        sizes=simulated_subjects,
        code=code_fingerprint("simulate"),
    log:
        L.log("simulate"),
    benchmark:
        L.benchmark("simulate")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/core.yaml"
    shell:
        "brainalign simulate --out {output} --preset {params.preset} --seed {params.seed} {params.sizes} > {log} 2>&1"
