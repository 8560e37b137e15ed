"""Is the PSU the rig file names really there? The check behind ``gbhil rig check``.

:func:`probe_psu` never raises for a faulty instrument: it returns a
:class:`ProbeResult` whose ``problem`` is one precise sentence an operator can
act on (resource missing, not answering, unknown model, wrong identity...).
It only reads: outputs are never switched and set points never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyvisa

from .psu import (
    Identity,
    PsuError,
    PsuIdentityError,
    PsuInstrumentError,
    PsuNotAnswering,
    PsuReplyError,
    PsuResourceMissing,
    PsuUnknownModel,
)
from .scpi import open_psu


class ProbeProblem(Enum):
    """Why a probe failed, most fundamental first."""

    RESOURCE_MISSING = "resource missing"
    NOT_ANSWERING = "not answering"
    UNKNOWN_MODEL = "unknown model"
    WRONG_IDENTITY = "wrong identity"
    BAD_REPLY = "bad reply"
    INSTRUMENT_ERROR = "instrument error"


#: Which problem each PSU error means; the first matching class wins (subclasses first).
_PROBLEM_OF: tuple[tuple[type[PsuError], ProbeProblem], ...] = (
    (PsuResourceMissing, ProbeProblem.RESOURCE_MISSING),
    (PsuNotAnswering, ProbeProblem.NOT_ANSWERING),
    (PsuUnknownModel, ProbeProblem.UNKNOWN_MODEL),
    (PsuIdentityError, ProbeProblem.WRONG_IDENTITY),
    (PsuReplyError, ProbeProblem.BAD_REPLY),
    (PsuInstrumentError, ProbeProblem.INSTRUMENT_ERROR),
)


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of probing one resource; ``ok`` iff ``problem`` is None."""

    resource_name: str
    identity: Identity | None = None
    driver: str | None = None  #: catalogue key of the driver that answered, e.g. "rigol-dp832"
    kind: ProbeProblem | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when the instrument is there, known, the expected one, and answering."""
        return self.kind is None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.resource_name}: ok, {self.identity} ({self.driver})"
        return f"{self.resource_name}: {self.kind.value if self.kind else 'failed'}: {self.problem}"


def _problem(error: PsuError) -> ProbeProblem:
    for cls, kind in _PROBLEM_OF:
        if isinstance(error, cls):
            return kind
    return ProbeProblem.INSTRUMENT_ERROR


def probe_psu(
    resource_name: str,
    rm: pyvisa.ResourceManager,
    *,
    expected_model: str | None = None,
    expected_serial: str | None = None,
    write_termination: str | None = None,
    timeout_ms: int | None = None,
) -> ProbeResult:
    """Open ``resource_name``, read ``*IDN?``, pick the driver, check it answers.

    ``expected_model`` / ``expected_serial`` come from the rig file; the
    other keywords as for :func:`~gbhil.rigs.instruments.scpi.open_psu`.
    """
    try:
        psu = open_psu(
            resource_name,
            rm,
            expected_model=expected_model,
            expected_serial=expected_serial,
            write_termination=write_termination,
            timeout_ms=timeout_ms,
        )
    except PsuError as exc:
        identity = exc.identity if isinstance(exc, PsuIdentityError) else None
        return ProbeResult(resource_name, identity, None, _problem(exc), str(exc))

    identity: Identity | None = None
    try:
        identity = psu.identify()  # again, now in the driver's own framing
        for channel in psu.channels:  # read-only: state and a measurement per output
            psu.output_enabled(channel)
            psu.measure_voltage(channel)
    except PsuError as exc:
        return ProbeResult(resource_name, identity, psu.catalogue_key, _problem(exc), str(exc))
    finally:
        psu.close()
    return ProbeResult(resource_name, identity, psu.catalogue_key)


__all__ = ["ProbeProblem", "ProbeResult", "probe_psu"]
