"""The inspection station: `lineguard run STATION.yaml`.

``station.Station`` decides parts; ``service`` wires it to its sinks and API and runs it;
``config`` is the typed STATION.yaml; ``status`` what a running station reports."""

from __future__ import annotations

from lineguard.station.config import ConfigError, StationConfig, load_config, parse_config
from lineguard.station.service import build_sinks, run_station
from lineguard.station.station import PartInFlight, Station
from lineguard.station.status import StationStatus

__all__ = [
    "ConfigError",
    "PartInFlight",
    "Station",
    "StationConfig",
    "StationStatus",
    "build_sinks",
    "load_config",
    "parse_config",
    "run_station",
]
