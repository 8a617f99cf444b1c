"""The offline lab: upstream software built from its Go modules, served from loopback mirrors.

See e2e/lab/README.md. Public API: Lab, LabEndpoints, Versions, LabCache, PIECES (the optional pieces).
"""

from e2e.lab.cache import LabCache
from e2e.lab.endpoints import LabEndpoints
from e2e.lab.extras import PIECES
from e2e.lab.lab import HttpRecord, Lab
from e2e.lab.registry import RegistryRecord
from e2e.lab.versions import Versions

__all__ = ["PIECES", "HttpRecord", "Lab", "LabCache", "LabEndpoints", "RegistryRecord", "Versions"]
