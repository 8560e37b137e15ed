"""gbhil's pytest plugin (entry point ``gbhil``): rig, DCC and device fixtures, traceability
markers, per-test artefacts and an HTML report. See docs/hil-tests.md.

The marker shortcuts let suites write ``@usecase("ECS52")`` instead of
``@pytest.mark.usecase("ECS52")``; both are the same marker. They load pytest on first
use, so importing this package (``gbhil run --help``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: The marker shortcuts and the pytest markers they stand for.
MARKER_SHORTCUTS = ("usecase", "srv", "needs")

if TYPE_CHECKING:
    import pytest

    #: GBCS use cases a test exercises: ``@usecase("ECS17b")``.
    usecase: pytest.MarkDecorator
    #: DUIS Service Reference Variants a test exercises: ``@srv("4.1.1")``.
    srv: pytest.MarkDecorator
    #: Capabilities the rig must have, else the test skips: ``@needs("subghz", "psu")``.
    needs: pytest.MarkDecorator


def __getattr__(name: str) -> Any:
    if name in MARKER_SHORTCUTS:
        import pytest

        return getattr(pytest.mark, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["needs", "srv", "usecase"]
