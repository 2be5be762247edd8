"""Where genscope keeps its state: $GENSCOPE_HOME, else ./genscope-runs."""

import os
from pathlib import Path


def home() -> Path:
    """Root of the run store and of local calibrations."""
    return Path(os.environ.get("GENSCOPE_HOME", "genscope-runs")).resolve()


def runs_dir() -> Path:
    return home() / "runs"


def hardware_dir() -> Path:
    """Measured hardware specs (e.g. ``cpu-local.json`` written by ``genscope calibrate``)."""
    return home() / "hardware"
