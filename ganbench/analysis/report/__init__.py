"""A suite's results → reports/<suite>/: README.md, tables (md, tex), summary.csv, figures.

Every number in a table or a finding carries its CI and n; the methods are named in the
report. The package keeps the analysis (`analysis`, no matplotlib) apart from the rendering:
`tables` (one `Table` per file), `figures`, `sections` (one function per README section) and
`build` (which puts them together).
"""

from __future__ import annotations

from ganbench.analysis.report.build import FORMATS, build_report, update_readme
from ganbench.analysis.report.tables import arm_cell, to_latex, to_markdown

__all__ = ["FORMATS", "build_report", "update_readme", "arm_cell", "to_latex", "to_markdown"]
