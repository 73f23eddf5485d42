"""Reading a finished run and presenting it: analysis, importance, plots, the HTML and Markdown report."""

from nas.report._importance import group_importance, param_importance
from nas.report._report import (
    FromScratchEstimate,
    ReportError,
    ReportFiles,
    estimate_from_scratch,
    write_report,
)

__all__ = [
    "estimate_from_scratch",
    "FromScratchEstimate",
    "group_importance",
    "param_importance",
    "ReportError",
    "ReportFiles",
    "write_report",
]
