"""Analysis of a results directory: how often, and how much, bad saddles slow training.

Reads runs and stalls (:func:`load`), answers grouped by any sweep axis
(:mod:`.tables`), with exact statistics (:mod:`.stats`); :func:`summary_text` is
the text summary and :func:`write_report` the HTML report with its figures.
Imports the core and ``store`` only, never ``sweep``.
"""

from __future__ import annotations

from .load import AnalysisError, Results, load
from .report import headline, summary_text, write_report
from .stats import bootstrap_ratios, fit_line, kaplan_meier, quantiles, wilson
from .tables import (
    AXES,
    depth_scaling,
    outcomes,
    saddle_frequency,
    scale_scaling,
    slowdown,
    stall_durations,
    survival,
    survival_summary,
    time_shares,
    time_to_best,
    time_to_target,
)

__all__ = [
    "AXES",
    "AnalysisError",
    "Results",
    "bootstrap_ratios",
    "depth_scaling",
    "fit_line",
    "headline",
    "kaplan_meier",
    "load",
    "outcomes",
    "quantiles",
    "saddle_frequency",
    "scale_scaling",
    "slowdown",
    "summary_text",
    "stall_durations",
    "survival",
    "survival_summary",
    "time_shares",
    "time_to_best",
    "time_to_target",
    "wilson",
    "write_report",
]
