"""Statistical process control on the record's values (pure numpy/scipy, no I/O): control charts
(X̄-R, X̄-S, I-MR, p, np, EWMA, CUSUM) with phase I limits a later chart can freeze, the Western
Electric and Nelson run rules, and capability (Cp, Cpk, Pp, Ppk) with confidence intervals.

Imported lazily (PEP 562): ``lineguard.spc.subgroups`` needs numpy alone, the charts scipy.
"""

from __future__ import annotations

from lineguard.lazy import lazy_exports

_EXPORTS = {
    "Capability": "lineguard.spc.process_capability",
    "capability": "lineguard.spc.process_capability",
    "AttributeChart": "lineguard.spc.charts",
    "Chart": "lineguard.spc.charts",
    "Cusum": "lineguard.spc.charts",
    "VariablesChart": "lineguard.spc.charts",
    "cusum": "lineguard.spc.charts",
    "ewma": "lineguard.spc.charts",
    "i_mr": "lineguard.spc.charts",
    "np_chart": "lineguard.spc.charts",
    "p_chart": "lineguard.spc.charts",
    "xbar_r": "lineguard.spc.charts",
    "xbar_s": "lineguard.spc.charts",
    "Subgroups": "lineguard.spc.subgroups",
    "DriftEvent": "lineguard.spc.drift",
    "DriftMonitor": "lineguard.spc.drift",
    "image_statistics": "lineguard.spc.drift",
    "ks_p_value": "lineguard.spc.drift",
    "psi": "lineguard.spc.drift",
    "Violation": "lineguard.spc.rules",
    "nelson": "lineguard.spc.rules",
    "western_electric": "lineguard.spc.rules",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
