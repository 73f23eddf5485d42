"""Reading a finished run and presenting it: loading, analysis, importance, plots, the HTML and Markdown report."""

from nas.report._analysis import FromScratchEstimate, estimate_from_scratch
from nas.report._importance import group_importance, param_importance
from nas.report._load import ReportError
from nas.report._report import ReportFiles, write_report

__all__ = [
    "FromScratchEstimate",
    "ReportError",
    "ReportFiles",
    "estimate_from_scratch",
    "group_importance",
    "param_importance",
    "write_report",
]
