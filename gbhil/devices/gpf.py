"""The Gas Proxy Function (GPF): the always-on stand-in for the sleeping GSME.

The GPF lives on the Communications Hub and keeps a mirror of the GSME's data
(ZSE Metering mirroring, gbcs-facts 7.2), so gas reads addressed to it
(GCS13a/b/c, GCS14, GCS16b, GCS60a, GCS61 ...) are answered at once from the
mirror instead of waiting for the GSME to wake.  It also holds the change of
tenancy date (GCS09).

The HAN layer feeds the mirror with :meth:`Gpf.mirror_from` (a copy of a
simulated GSME's state, shared copy-on-write) or :meth:`Gpf.update_mirror`
(attribute reports from a real GSME).  Until the first update the GPF runs
its own copy of the gas model, as if a GSME were reporting continuously.

Response date-time clock status (gbcs-facts 1.3): 0x04 when the answer comes
from mirrored GSME data (stamped with the time of that data), 0x00 when it is
the GPF's own view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from gbhil.devices import credentials, firmware, joining
from gbhil.devices.core import Command, DeviceType, Handler, dlms_datetime
from gbhil.devices.gsme import (
    DEVICE_MGMT,
    ENCRYPTED_RESPONSE_CODES,
    L_CHANGE_OF_TENANCY,
    READ_COMMANDS,
    GasMeter,
    GasMeterData,
    Gsme,
    advance_state,
    h_change_of_tenancy,
    make_model,
    registers,
    settings,
)
from gbhil.devices.zcl_server import (
    DIRECTION_TO_CLIENT,
    PROFILE_DIR,
    AttributeStore,
    CommandSpec,
    CommandTable,
    DeviceProfile,
    command_table,
    from_gbz_seconds,
    gbz_seconds,
    load_profile,
)
from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.frame import GeneralSigning
from gbhil.gbcs.zcl import ZclValue

#: GBZ message codes addressed to the GPF (RTDS and gbcs-facts 7.2).
GPF_MESSAGE_CODES: frozenset[int] = frozenset(
    {
        0x0072,  # GCS09 change of tenancy date
        0x0074,  # GCS13a consumption register
        0x0075,  # GCS14 prepayment registers
        0x0096,  # GCS16b prepayment daily read log (URP)
        0x009E,  # GCS21e device identity
        0x00A0,  # GCS61 gas daily consumption log
        0x00B6,  # GCS13c TOU registers
        0x00B8,  # GCS13b block counters
        0x012A,  # GCS60a meter balance
    }
)
#: Clock status of the response date-time: the GPF's own time / GSME time (gbcs-facts 1.3).
CLOCK_GPF_TIME = 0x00
CLOCK_GSME_TIME = 0x04
#: Clusters answered from the GPF's own profile rather than from the mirror.
OWN_CLUSTERS = frozenset({cat.CLUSTER_BASIC})

GPF_COMMANDS: CommandTable = command_table(
    *READ_COMMANDS,
    CommandSpec(DEVICE_MGMT, DIRECTION_TO_CLIENT, 0x00, L_CHANGE_OF_TENANCY, h_change_of_tenancy),
)


class Gpf(GasMeter):
    """Gas Proxy Function on the Communications Hub."""

    DEVICE_TYPE = DeviceType.GPF
    GENERIC_ALERT_FAMILY = "GBZ"
    COMMANDS: ClassVar[CommandTable] = GPF_COMMANDS
    ENCRYPTED_RESPONSES: ClassVar[frozenset[int]] = ENCRYPTED_RESPONSE_CODES
    _HANDLERS: ClassVar[dict[int, Handler] | None] = None

    __slots__ = ("_faults", "_urp", "data", "identity", "mirror_time", "profile_data", "reported")

    def __init__(self, eui: bytes, keys: Any, clock: Any, profile: Any = None) -> None:
        own = profile if isinstance(profile, DeviceProfile) else load_profile(
            PROFILE_DIR / "gpf.toml"
        )  # fmt: skip
        super().__init__(eui, keys, clock, own)
        gas = load_profile(PROFILE_DIR / str(own.setting("mirror", "profile", "gsme.toml")))
        self.profile_data = gas
        self.identity = AttributeStore(own)
        self._faults = None
        self._urp = None
        self.data = GasMeterData(gas, make_model(gas, eui), gbz_seconds(clock.now()))
        #: GBZ time of the last GSME data in the mirror; None until the first update.
        self.mirror_time: int | None = None
        #: Attribute values a real GSME reported (override the model until the next copy).
        self.reported: dict[tuple[int, int], ZclValue] | None = None

    def handlers(self) -> dict[int, Handler]:
        cls = type(self)
        if cls._HANDLERS is None:
            gbz_handler: Handler = cls.handle_gbz  # type: ignore[assignment]
            table: dict[int, Handler] = {
                **joining.handlers(), **firmware.handlers(), **credentials.handlers()
            }  # fmt: skip
            table.update(dict.fromkeys(GPF_MESSAGE_CODES, gbz_handler))
            cls._HANDLERS = table
        return cls._HANDLERS

    # -- the mirror (driven by the HAN layer) -------------------------------------------
    def mirror_from(self, gsme: Gsme) -> None:
        """Take a simulated GSME's data as it is now (shared copy-on-write)."""
        gsme.advance(gsme.clock.now())
        mirror = gsme.data.copy()
        mirror.tenancy = self.data.tenancy  # the change of tenancy date is the GPF's own
        self.data = mirror
        self.mirror_time = mirror.updated
        self.reported = None

    def update_mirror(
        self, values: Mapping[tuple[int, int], ZclValue | int | bytes], at: datetime
    ) -> None:
        """Attribute reports from a GSME: (cluster, attribute) -> value, as of ``at``."""
        reported = dict(self.reported or {})
        st = self.data.copy()
        for (cluster, attr), v in values.items():
            if isinstance(v, ZclValue):
                value = v
            else:
                spec = st.attrs.profile.spec(cluster, attr)
                if spec is None:
                    raise KeyError(f"attribute 0x{cluster:04X}/0x{attr:04X} not mirrored")
                value = ZclValue(spec.type_id, v)
            if registers(st, cluster, attr) is not None:
                reported[(cluster, attr)] = value
            else:
                st.attrs.set(cluster, attr, value)
        self.data = st
        self.reported = reported or None
        self.mirror_time = gbz_seconds(at)

    # -- answers -------------------------------------------------------------------------
    def advance(self, now: datetime) -> None:
        """Without GSME data the GPF runs the model itself; otherwise the mirror stays put."""
        if self.mirror_time is None:
            advance_state(self.data, gbz_seconds(now), settings(self.profile_data))

    def read_attribute(self, state: Any, cluster: int, attribute_id: int) -> ZclValue | None:
        if cluster in OWN_CLUSTERS:
            return self.identity.get(cluster, attribute_id)
        if self.reported is not None:
            v = self.reported.get((cluster, attribute_id))
            if v is not None:
                return v
        return super().read_attribute(state, cluster, attribute_id)

    def response_clock_status(self, cmd: Command) -> int:
        return CLOCK_GPF_TIME if self.mirror_time is None else CLOCK_GSME_TIME

    def response_header(self, cmd: Command) -> GeneralSigning:
        gs = super().response_header(cmd)
        if gs.date_time is not None and self.mirror_time is not None:
            stamp = dlms_datetime(from_gbz_seconds(self.mirror_time), CLOCK_GSME_TIME)
            gs = replace(gs, date_time=stamp)
        return gs

    @property
    def gas_state(self) -> GasMeterData:
        return self.data
