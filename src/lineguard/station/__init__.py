"""The inspection station: `lineguard run STATION.yaml`.

``station.Station`` coordinates: sources give images, workers run the checks, the decide thread
records then reports. ``parts`` holds each part in flight, ``recording`` turns a decided part into
its record, ``service`` wires the station to its sinks and API and runs it, ``config`` is the typed
STATION.yaml and ``status`` what a running station reports."""

from __future__ import annotations

from lineguard.station.config import ConfigError, StationConfig, load_config, parse_config
from lineguard.station.parts import PartInFlight
from lineguard.station.service import build_sinks, run_station
from lineguard.station.station import Station
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
