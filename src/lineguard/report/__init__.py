"""Reports on the record: the shift report (one self-contained HTML file)."""

from lineguard.report.shift import ShiftData, gather, render

__all__ = ["ShiftData", "gather", "render"]
