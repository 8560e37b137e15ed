"""Alert configuration suite: SR 6.22 Configure Alert Behaviour on the ESME (ECS25a-b) and
SR 6.2.10 reading it back (ECS25r1 supplier, ECS25r2 network operator).

A 6.22 names alerts (``x810D`` ...) as Enable or Disable; the command carries a 256-bit
mask of the alerts named and their new state, one bit per alert code's low octet. The
ESME changes exactly those alerts in the behaviour the read returns.
"""

from __future__ import annotations

from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.pytest_plugin import srv, usecase
from gbhil.pytest_plugin.plugin import DccClient

BITS = 256
#: ECS25r1 reads four behaviours in this order: alerts, HAN, audible alarm, logging.
SUPPLIER_BEHAVIOURS = ("ECS25a", "ECS25a1", "ECS25a2", "ECS25a3")
#: ECS25r2 reads the network operator's alerts and logging.
NETWORK_OPERATOR_BEHAVIOURS = ("ECS25b", "ECS25b3")


def _configure(dcc: DccClient, esme: Device, choice: str, group: str,
               settings: dict[int, bool], user: Role) -> str:
    alerts = "".join(f"<sr:x{code:04X}>{'Enable' if on else 'Disable'}</sr:x{code:04X}>"
                     for code, on in settings.items())
    body = (f"<sr:ConfigureAlertBehaviour><sr:{choice}><sr:{group}>{alerts}</sr:{group}>"
            f"</sr:{choice}></sr:ConfigureAlertBehaviour>")
    summary = dcc.describe(dcc.submit(dcc.request("6.22", esme, body=body, user=user))
                           .await_response())
    assert summary["outcome"]["success"] is True
    return str(summary["header"]["useCase"])


def _read(dcc: DccClient, esme: Device, user: Role) -> list[int]:
    summary = dcc.describe(dcc.submit(dcc.request("6.2.10", esme, user=user)).await_response())
    assert summary["outcome"]["success"] is True
    return [int(item["bit-string"], 2) for item in summary["payload"]["data"]]


def _enabled(behaviour: int, code: int) -> bool:
    return bool(behaviour >> (code & 0xFF) & 1)


@usecase("ECS25a1", "ECS25a", "ECS25r1")
@srv("6.22", "6.2.10")
def test_supplier_alert_settings_change_exactly_the_alerts_named(
    dcc: DccClient, esme: Device
) -> None:
    before = _read(dcc, esme, Role.SUPPLIER)
    han = SUPPLIER_BEHAVIOURS.index("ECS25a1")

    used = _configure(dcc, esme, "ElectricitySupplierHANAlertSettings", "SupplierESMECommon",
                      {0x810D: True, 0x8119: False}, Role.SUPPLIER)
    after = _read(dcc, esme, Role.SUPPLIER)

    assert used == "ECS25a1"
    assert _enabled(after[han], 0x810D) and not _enabled(after[han], 0x8119)
    untouched = ~((1 << 0x0D) | (1 << 0x19)) & (2**BITS - 1)
    assert after[han] & untouched == before[han] & untouched, "other alerts keep their state"
    assert [b for i, b in enumerate(after) if i != han] == [
        b for i, b in enumerate(before) if i != han], "other behaviours unchanged"

    _configure(dcc, esme, "ElectricitySupplierAlerts", "SupplierESMECommon",
               {0x810D: False}, Role.SUPPLIER)
    wan = SUPPLIER_BEHAVIOURS.index("ECS25a")
    final = _read(dcc, esme, Role.SUPPLIER)
    assert not _enabled(final[wan], 0x810D) and _enabled(final[han], 0x810D)


@usecase("ECS25b", "ECS25r2")
@srv("6.22", "6.2.10")
def test_network_operator_alerts_are_set_and_read_back(dcc: DccClient, esme: Device) -> None:
    used = _configure(dcc, esme, "ElectricityNetworkOperatorAlerts",
                      "NetworkOperatorESMECommon", {0x8014: True, 0x8015: False},
                      Role.NETWORK_OPERATOR)
    alerts, _logging = _read(dcc, esme, Role.NETWORK_OPERATOR)

    assert used == "ECS25b"
    assert _enabled(alerts, 0x8014) and not _enabled(alerts, 0x8015)
    _configure(dcc, esme, "ElectricityNetworkOperatorAlerts", "NetworkOperatorESMECommon",
               {0x8014: False, 0x8015: True}, Role.NETWORK_OPERATOR)
    alerts, _logging = _read(dcc, esme, Role.NETWORK_OPERATOR)
    assert not _enabled(alerts, 0x8014) and _enabled(alerts, 0x8015)
