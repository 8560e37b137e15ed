"""7.x supply and auxiliary loads: load switch / valve, ALCS and boost button, tamper state.

The ESME load switch and auxiliary load switches are driven by scripts of the disconnect
control script table (class 9): 0-0:10.0.106.255 for the supply, 0-0:10.0.103.255 for the
auxiliary switches with the switch number in the high byte of the script id. The GSME valve
is the Metering cluster's Change Supply command.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from gbhil.dcc.transforms.base import (
    BuildContext,
    Builder,
    BuildError,
    access_request,
    action,
    builder,
    cluster_command,
    dlms_execution,
    eui_bytes,
    find,
    find_all,
    gbz_message,
    integer,
    le,
    obis,
    set_,
    text,
    utc_le,
)
from gbhil.dcc.transforms.calendars import (
    dlms_date,
    dlms_time,
    indexed,
    schedule_entry,
    special_day_table,
    special_days_bits,
    weekdays,
)
from gbhil.gbcs.axdr import Array, Boolean, Data, OctetString, Uint16
from gbhil.gbcs.dlms import RequestSpec

SUPPLY_SCRIPTS = "0-0:10.0.106.255"
AUXILIARY_SCRIPTS = "0-0:10.0.103.255"
SCRIPT_TABLE = 9
EXECUTE = 1
#: Supply script ids: close (enable), open (disable), arm.
SCRIPT_ENABLE = 51
SCRIPT_DISABLE = 52
SCRIPT_ARM = 54
#: Auxiliary switch script: (switch << 8) | operation.
AUX_ACTIVATE = 0x11
AUX_RESET = 0x20
AUX_SWITCHES = range(1, 6)

METERING = 0x0702
CHANGE_SUPPLY = 0x0B
VALVE_OFF = 0x00
VALVE_ARMED = 0x01
#: Supply control bits: acknowledge required.
ACKNOWLEDGE = 0x01

RANDOMISED_OFFSET_LIMIT = "0-0:94.44.0.1"
SUPPLY_TAMPER_STATE = "0-0:94.44.0.4"
TAMPER_LOCKED = "Locked"


def _script(script: int) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        return access_request(ctx.counter, [action(SCRIPT_TABLE, SUPPLY_SCRIPTS, EXECUTE,
                                                   Uint16(script))])

    return build


builder("ECS42")(_script(SCRIPT_ENABLE))
builder("ECS43")(_script(SCRIPT_DISABLE))
builder("ECS44")(_script(SCRIPT_ARM))


def _valve(state: int) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        payload = (
            le(0, 4, "provider id") + utc_le(ctx.now) + le(0, 4, "request time")
            + le(0, 4, "implementation time") + bytes((state, ACKNOWLEDGE))
        )
        return gbz_message([cluster_command(METERING, CHANGE_SUPPLY, payload)])

    return build


builder("GCS32")(_valve(VALVE_OFF))
builder("GCS39")(_valve(VALVE_ARMED))


def _switch(ctx: BuildContext, element: str) -> int:
    found = find(ctx.body, element)
    if found is None:
        raise BuildError(f"{element} is missing")
    index = int(found.get("index", "0"))
    if index not in AUX_SWITCHES:
        raise BuildError(f"auxiliary load switch {index} does not exist")
    return index


@builder("ECS47Activate")
def activate_auxiliary_load(ctx: BuildContext) -> bytes:
    switch = _switch(ctx, "ActivateALCSHCALCS")
    duration = integer(ctx.body, "ActivateALCSHCALCS/Duration")
    return access_request(
        ctx.counter,
        [
            set_(1, f"0-0:94.44.117.{switch}", 2, Uint16(duration)),
            action(SCRIPT_TABLE, AUXILIARY_SCRIPTS, EXECUTE, Uint16(switch << 8 | AUX_ACTIVATE)),
        ],
    )


@builder("ECS47Reset")
def reset_auxiliary_load(ctx: BuildContext) -> bytes:
    switch = _switch(ctx, "ResetALCSHCALCS")
    return access_request(
        ctx.counter,
        [action(SCRIPT_TABLE, AUXILIARY_SCRIPTS, EXECUTE, Uint16(switch << 8 | AUX_RESET))],
    )


def _boost(element: str, add: bool) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        items = []
        for e in find_all(ctx.body, element):
            index = int(e.get("index", "0"))
            if index not in AUX_SWITCHES:
                raise BuildError(f"{element} index {index} is not an auxiliary load")
            if (e.text or "").strip() in ("true", "1"):
                items.append(set_(1, f"0-0:94.44.6.{index}", 2, Boolean(add)))
        if not items:
            raise BuildError(f"no {element} is set")
        return access_request(ctx.counter, items)

    return build


builder("ECS62Add")(_boost("AddToBoostButton", True))
builder("ECS62Remove")(_boost("RemoveFromBoostButton", False))


@builder("ECS38")
def randomised_offset_limit(ctx: BuildContext) -> bytes:
    limit = integer(ctx.body, "RandomisedOffsetLimit")
    return access_request(ctx.counter, [set_(1, RANDOMISED_OFFSET_LIMIT, 2, Uint16(limit))])


@builder("ECS81")
def supply_tamper_state(ctx: BuildContext) -> bytes:
    locked = text(ctx.body, "SupplyTamperState") == TAMPER_LOCKED
    return access_request(ctx.counter, [set_(1, SUPPLY_TAMPER_STATE, 2, Boolean(locked))])



# --- 6.14.2 / 6.14.3 auxiliary load and auxiliary controller calendars --------------------

AUX_SPECIAL_DAYS = "0-1:11.0.3.255"
AUX_SCHEDULE = "0-1:12.0.2.255"
AUX_CALENDAR_ACTIVATION = ("0-0:94.44.128.26", "0-0:94.44.128.35")
#: Switch identities: 0-0:94.44.0.21-25 hold the HCALCS EUI, or zeros for an ALCS.
SWITCH_IDENTITY = "0-0:94.44.0.{}"
SWITCH_IDENTITY_BASE = 20
ALCS_IDENTITY = bytes(8)
#: ALCS script selector low byte: activate / deactivate the switch.
ALCS_ACTIVATE = 0x01
ALCS_DEACTIVATE = 0x02
#: Auxiliary controller selector: (0x10 output / 0x20 input from the load + n) << 8 |
#: (0x80 + commanded level %).
APC_OUTPUT = 0x10
APC_INPUT = 0x20
APC_LEVEL_BASE = 0x80


def _calendar(
    ctx: BuildContext, days_path: str, days_attribute: str, schedules: str,
    dates_element: str, special_attribute: str,
    selector_of: Callable[[etree._Element], int],
) -> tuple[Array, Array]:
    days = indexed(find_all(ctx.body, days_path), days_attribute)
    table = special_day_table([(i, dlms_date(e)) for i, e in days])
    script = obis(AUXILIARY_SCRIPTS)
    entries = []
    for n, item in enumerate(find_all(ctx.body, schedules), start=1):
        special = [i for i, _ in indexed(find_all(item, "SpecialDaysApplicability"),
                                         special_attribute)]
        window = find(item, dates_element)
        start = None if window is None else find(window, "StartDate")
        end = None if window is None else find(window, "EndDate")
        if window is None or start is None or end is None:
            raise BuildError(f"{dates_element} needs StartDate and EndDate")
        entries.append(
            schedule_entry(
                n, script, selector_of(item), dlms_time(window, "SwitchTime"), weekdays(item),
                special_days_bits(special, len(days)), dlms_date(start), dlms_date(end),
            )
        )
    return table, Array(tuple(entries))


def _alcs_selector(item: etree._Element) -> int:
    switch = find(item, "ActivateDeactivateSwitch")
    if switch is None:
        raise BuildError("ALCSHCALCSConnectionSchedule has no ActivateDeactivateSwitch")
    number = int(switch.get("index", "0"))
    if number not in AUX_SWITCHES:
        raise BuildError(f"auxiliary load switch {number} does not exist")
    op = ALCS_ACTIVATE if find(switch, "ActivateSwitch") is not None else ALCS_DEACTIVATE
    return number << 8 | op


def _apc_selector(item: etree._Element) -> int:
    act = find(item, "AuxiliaryControllerAction")
    if act is None:
        raise BuildError("AuxiliaryControllerSchedule has no AuxiliaryControllerAction")
    number = int(act.get("auxiliaryControllerN", "0"))
    if number not in AUX_SWITCHES:
        raise BuildError(f"auxiliary controller {number} does not exist")
    level = integer(act, "CommandedStateLevel")
    if not 0 <= level <= 100:
        raise BuildError(f"CommandedStateLevel {level} is not a percentage")
    kind = APC_INPUT if find(act, "InputFromControlledLoad") is not None else APC_OUTPUT
    return (kind + number) << 8 | (APC_LEVEL_BASE + level)


def _activation(ctx: BuildContext) -> list[tuple[RequestSpec, Data]]:
    when = OctetString(dlms_execution(ctx.execution))
    return [set_(9000, ln, 6, when) for ln in AUX_CALENDAR_ACTIVATION]


@builder("ECS46c")
def alcs_schedule(ctx: BuildContext) -> bytes:
    identities = [
        set_(1, SWITCH_IDENTITY.format(SWITCH_IDENTITY_BASE + n), 2,
             OctetString(ALCS_IDENTITY if find(e, "ALCS") is not None
                         else eui_bytes(text(e, "HCALCS"), "HCALCS")))
        for n, e in indexed(find_all(ctx.body, "SwitchTypeAndId"), "index")
    ]
    table, schedule = _calendar(
        ctx, "ALCSHCALCSSpecialDays/ALCSHCALCSSpecialDay", "index",
        "ALCSHCALCSConnectionSchedule", "ALCSScheduleDatesAndTime", "index", _alcs_selector,
    )
    return access_request(
        ctx.counter,
        [*identities, set_(11, AUX_SPECIAL_DAYS, 2, table), set_(10, AUX_SCHEDULE, 2, schedule),
         *_activation(ctx)],
    )


@builder("ECS46d")
def auxiliary_controller_schedule(ctx: BuildContext) -> bytes:
    table, schedule = _calendar(
        ctx,
        "AuxiliaryControllerSpecialDayDefinitions/AuxiliaryControllerSpecialDayDefinition",
        "identifier", "AuxiliaryControllerSchedule", "AuxiliaryControllerSchedulePeriodAndTime",
        "identifier", _apc_selector,
    )
    return access_request(
        ctx.counter,
        [set_(11, AUX_SPECIAL_DAYS, 2, table), set_(10, AUX_SCHEDULE, 2, schedule),
         *_activation(ctx)],
    )
