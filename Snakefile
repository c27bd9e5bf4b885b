# brainalign: NSD / BOLD5000 / THINGS-EEG2 -> voxel stores -> CNN features -> encoding models ->
# synthetic fMRI -> brain-aligned training -> RSA / EEG evaluation -> report.
# All logic lives in the brainalign package; rules only wire files to `brainalign <stage>` commands.
from brainalign.config_check import check_workflow_config

configfile: "config.yaml"


# the checks of `brainalign check-config`: schema, data on disk, GPUs vs this run's --set-resources/--resources
check_workflow_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml", source="config",
                      workflow=workflow)

report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    subject=r"[0-9]+",
    model=r"[A-Za-z0-9_]+",
    stimset=r"nsd|bold5000|things_eeg2|unseen",
    variant=r"aligned|beta0|shuffled",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/rsa.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    stimulus_lists,
    categories,
    rsa_dimensions,
    manifest,


rule all:
    input:
        L.report_summary(),
        L.manifest(),
    default_target: True
