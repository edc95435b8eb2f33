"""Input and output: evaluation reports (CSV tables, plots, Markdown, HTML), cells for cell-eval."""

from ._export import export_cell_eval
from ._report import write_html_report, write_report

__all__ = ["export_cell_eval", "write_html_report", "write_report"]
