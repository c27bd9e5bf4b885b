"""``brainalign report --results DIR [--out DIR/report]``: findings, figures and summary of a results folder."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--results", required=True, help="the pipeline's results folder")
    parser.add_argument("--out", help="report folder (summary.md, findings.parquet, alignment.parquet, figures/); "
                                       "default: the results layout's, RESULTS/report")


def run(args) -> int:
    from ..layout import ResultsLayout
    from .document import build_report

    table = build_report(args.results, args.out or ResultsLayout(args.results).report())
    for row in table.itertuples():
        log.info("[%s] %s: effect %.4g [%.4g, %.4g], p %.3g (%s)", row.verdict, row.finding, row.effect, row.ci_low,
                 row.ci_high, row.p, row.test)
    return 0
