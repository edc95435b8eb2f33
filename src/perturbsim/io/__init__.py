"""Input and output: evaluation reports (CSV tables, plots, Markdown)."""

from ._report import write_report

__all__ = ["write_report"]
