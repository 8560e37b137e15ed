"""``gbhil run``: the main job. The standard HIL suites on a rig, with a progress display.

It runs ``hil_tests/`` through pytest and the gbhil plugin (the default rig is the
all-simulated one, on a virtual clock, so the whole run takes seconds), prints one line
per test, writes ``reports/`` (``junit.xml``, ``index.html``, ``artefacts/``) and says
where the report is. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pluggy import HookimplMarker

from gbhil.pytest_plugin.report import (
    ARTEFACTS_DIR,
    INDEX,
    PROP_VIRTUAL_SECONDS,
    Outcome,
    RunRecorder,
    format_virtual,
)

if TYPE_CHECKING:  # pytest and the plugin load when the command runs, not for --help
    import pytest

SUITES_DIR = "hil_tests"
SUITE_PREFIX = "test_"
JUNIT_FILE = "junit.xml"
DEFAULT_REPORT = Path("reports")
#: How each outcome shows in the progress display.
LABELS: dict[Outcome, str] = {
    Outcome.PASSED: "PASSED",
    Outcome.FAILED: "FAILED",
    Outcome.ERROR: "ERROR",
    Outcome.SKIPPED: "SKIPPED",
    Outcome.XFAILED: "XFAIL",
    Outcome.XPASSED: "XPASS",
}
PLUGIN_ENTRY_POINT = "gbhil"
PLUGIN_MODULE = "gbhil.pytest_plugin.plugin"
#: pytest's hook marker without importing pytest (``gbhil --help`` stays fast).
hookimpl = HookimplMarker("pytest")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="run the standard HIL suites (default: the all-simulated rig) and write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="suite names (smoke = hil_tests/test_smoke.py) or paths; default: all",
    )
    p.add_argument("--rig", metavar="FILE", help="rig file (default: the all-simulated rig)")
    p.add_argument(
        "--report",
        type=Path,
        default=DEFAULT_REPORT,
        metavar="DIR",
        help=f"report folder (default: {DEFAULT_REPORT})",
    )
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="only tests matching EXPR")
    p.add_argument(
        "--bus-url",
        metavar="URL",
        help="MQTT rigs: broker instead of the rig file's (mqtt://host:port; or $GBHIL_BUS_URL)",
    )
    p.add_argument(
        "--bus-rate",
        type=float,
        metavar="RATE",
        help="MQTT rigs: rig seconds per wall second of the shared clock (or $GBHIL_BUS_RATE)",
    )
    p.set_defaults(
        func=lambda a: run(
            a.suites,
            rig=a.rig,
            report=a.report,
            keyword=a.keyword,
            bus_url=a.bus_url,
            bus_rate=a.bus_rate,
        )
    )


class UnknownSuite(ValueError):
    """A suite name that is neither a file nor ``hil_tests/test_<name>.py``."""


def suites_dir(cwd: Path | None = None) -> Path:
    """``./hil_tests`` when run from a checkout, else the one next to the package."""
    local = (cwd or Path.cwd()) / SUITES_DIR
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / SUITES_DIR


def available_suites(folder: Path) -> list[str]:
    return sorted(p.stem.removeprefix(SUITE_PREFIX) for p in folder.glob(f"{SUITE_PREFIX}*.py"))


def suite_paths(suites: Sequence[str], folder: Path) -> list[str]:
    """Suite names or paths -> pytest arguments; an unknown name is a usage error."""
    if not suites:
        return [str(folder)]
    out: list[str] = []
    for suite in suites:
        path = Path(suite.split("::", 1)[0])
        candidates = [path, folder / path, folder / f"{SUITE_PREFIX}{suite}.py"]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            names = ", ".join(available_suites(folder)) or "none"
            raise UnknownSuite(f"no suite {suite!r} (suites in {folder}: {names})")
        node = suite.split("::", 1)[1] if "::" in suite else ""
        out.append(str(found) + (f"::{node}" if node else ""))
    return out


def _plugin_autoloaded() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.name == PLUGIN_ENTRY_POINT for ep in metadata.entry_points(group="pytest11"))


class Progress:
    """A pytest plugin printing one line per test: status, virtual time, name."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.recorder = RunRecorder()
        self.collect_errors: list[str] = []
        self.rig = ""
        self.started = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @staticmethod
    @hookimpl(trylast=True)
    def pytest_configure(config: pytest.Config) -> None:
        """This display replaces pytest's terminal output; the terminal plugin itself stays
        loaded so options in a project's ``addopts`` (``-ra``) still parse."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext}")
            self._print(f"{'ERROR':<8}{'':<14}{report.nodeid} (collection)")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from gbhil.pytest_plugin.plugin import hil_session

        spec = hil_session(session.config).spec
        self.rig = spec.name
        count = len(session.items)
        self._print(
            f"gbhil run: {count} test{'s' * (count != 1)} on rig {spec.name!r} ({spec.source})"
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.recorder.add(report)
        if report.when != "teardown":
            return
        virtual = dict(report.user_properties).get(PROP_VIRTUAL_SECONDS)
        shown = format_virtual(float(str(virtual))) if virtual is not None else "-"
        line = f"{LABELS[record.outcome]:<8}{shown:<14}{report.nodeid}"
        if record.outcome in (Outcome.SKIPPED, Outcome.XFAILED) and record.text:
            line += f"  ({record.text.splitlines()[0]})"
        self._print(line)

    def summary(self) -> str:
        counts = self.recorder.counts()
        parts = [f"{counts[o]} {o.value}" for o in Outcome if counts[o]]
        if self.collect_errors:
            parts.append(f"{len(self.collect_errors)} collection errors")
        virtual = sum(r.virtual_seconds or 0.0 for r in self.recorder.records.values())
        wall = time.monotonic() - self.started
        return (
            f"{', '.join(parts) or 'no tests'} in {wall:.1f} s wall"
            f" ({format_virtual(virtual)} virtual)"
        )

    def failures(self) -> list[str]:
        bad = (Outcome.FAILED, Outcome.ERROR)
        out = [
            f"{r.outcome.value.upper()} {r.nodeid}\n{r.text}"
            for r in self.recorder.records.values()
            if r.outcome in bad
        ]
        return out + self.collect_errors


def pytest_args(
    paths: Sequence[str],
    *,
    rig: str | None,
    report: Path,
    keyword: str | None,
    bus_url: str | None = None,
    bus_rate: float | None = None,
) -> list[str]:
    args = [*paths, "-p", "no:cacheprovider"]
    if not _plugin_autoloaded():
        args += ["-p", PLUGIN_MODULE]
    args += [f"--junitxml={report / JUNIT_FILE}", f"--gbhil-report={report}"]
    if rig:
        args += ["--rig", rig]
    if keyword:
        args += ["-k", keyword]
    if bus_url:
        args += ["--bus-url", bus_url]
    if bus_rate is not None:
        args += ["--bus-rate", str(bus_rate)]
    return args


def run(
    suites: Sequence[str] = (),
    *,
    rig: str | None = None,
    report: Path = DEFAULT_REPORT,
    keyword: str | None = None,
    out: TextIO | None = None,
    bus_url: str | None = None,
    bus_rate: float | None = None,
) -> int:
    """Run the suites; returns pytest's exit status."""
    import pytest

    out = out if out is not None else sys.stdout
    started = time.time()
    try:
        paths = suite_paths(suites, suites_dir())
    except UnknownSuite as exc:
        print(f"gbhil run: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    report = report.resolve()
    progress = Progress(out)
    status = pytest.main(
        pytest_args(
            paths, rig=rig, report=report, keyword=keyword, bus_url=bus_url, bus_rate=bus_rate
        ),
        plugins=[progress],
    )
    if status == pytest.ExitCode.USAGE_ERROR:
        return int(status)  # pytest printed what is wrong; no report was written
    for failure in progress.failures():
        print(f"\n{failure}", file=out)
    print(f"\n{progress.summary()}", file=out)
    index = report / INDEX
    if index.is_file() and index.stat().st_mtime >= started:
        print(f"report: {index}", file=out)
        print(f"junit:  {report / JUNIT_FILE}", file=out)
        print(f"artefacts: {report / ARTEFACTS_DIR}/", file=out)
    return int(status)
