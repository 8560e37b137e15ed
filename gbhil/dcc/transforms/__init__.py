"""Payload builders of the DSP transform, one module per service-request family.

Importing this package registers every builder in :data:`base.BUILDERS` (keyed by the use
case label the catalogue in :mod:`gbhil.dcc.mapping` names).
"""

from gbhil.dcc.transforms import (  # noqa: F401  (imported to register builders)
    config,
    dual_band,
    firmware,
    han,
    prepayment,
    reads,
    security,
    supply,
    tariffs,
)
from gbhil.dcc.transforms.base import BUILDERS, BuildContext, BuildError, Execution, When

__all__ = ["BUILDERS", "BuildContext", "BuildError", "Execution", "When"]
