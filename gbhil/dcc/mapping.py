# ruff: noqa: E501  (a catalogue: one SRV or route per line reads better than wrapped rows)
"""The DSP's catalogue: service reference variant -> GBCS use case, message code, who signs.

Data only, written for gbhil from what the GBCS use-case table and the DUIS service-request
matrix state (facts kept: SRV, request name, critical, future-dated pattern, non-device,
eligible roles, DUIS body element; per use case: GBCS use case, message code, target
device types, Business Originator). Which use case serves a request is decided here, not in
code: by the target's device type, the User's role and a few body conditions. Where GBCS has
several use cases for one device type that differ only by device model (polyphase, newer
GBCS versions: ECS23/ECS23b, ECS26e/ECS26m ...), the first row is the default and the
caller may prefer another (``TransformContext.preferred_use_cases``).

Who originates (gbcs-facts 2.8): normally the DCC User; some commands the ACB sends on the
User's behalf, naming the User in the Supplementary Remote Party fields; a few the DCC sends
as itself (ACB or Transitional CoS party) with plain Other Information.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Originator(enum.Enum):
    """Business Originator of the GBCS command."""

    USER = "user"
    ACB_FOR_USER = "acb-for-user"
    ACB = "acb"
    TRANSITIONAL_COS = "transitional-cos"


class FutureDating(enum.Enum):
    """DUIS "Future Dated Response Pattern": who holds a future-dated request."""

    NONE = "No"
    DSP = "DSP"
    DEVICE = "Device"
    DSP_AND_DEVICE = "DSP & Device"


# DUIS device types (ReadInventory DeviceType).
ESME = "ESME"
GSME = "GSME"
CHF = "CHF"
GPF = "GPF"
PPMID = "PPMID"
HCALCS = "HCALCS"
IHD = "IHD"
CAD = "CAD"
TYPE2 = "Type2"
METERS = frozenset({ESME, GSME})
GAS = frozenset({GSME, GPF})
#: Devices without their own certificates that join a meter by Method B.
TYPE2_DEVICES = frozenset({IHD, CAD, TYPE2})


@dataclass(frozen=True, slots=True)
class Condition:
    """A body test a route needs.

    ``path`` is an element path below the body ("A/B"). With ``values`` empty the element
    must be present (or absent with ``absent``); otherwise its text must be one of them.
    With ``device_type_of`` the text is a device EUI and the *device type* of that device
    must be one of ``values`` (joins: the type of the other device decides the method).
    """

    path: str
    values: frozenset[str] = frozenset()
    absent: bool = False
    device_type_of: bool = False


def present(path: str) -> Condition:
    return Condition(path)


def absent(path: str) -> Condition:
    return Condition(path, absent=True)


def equals(path: str, *values: str) -> Condition:
    return Condition(path, frozenset(values))


def other_device(path: str, *types: str) -> Condition:
    return Condition(path, frozenset(types), device_type_of=True)


@dataclass(frozen=True, slots=True)
class Route:
    """One GBCS use case able to serve an SRV."""

    use_case: str
    message_code: int
    device_types: frozenset[str]
    originator: Originator
    #: The command carries an ECDSA signature (critical use case).
    signed: bool
    when: tuple[Condition, ...] = ()
    #: User roles this route is for; empty: any eligible role.
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ServiceVariant:
    """One DUIS service reference variant."""

    srv: str
    name: str
    body: str
    critical: bool
    future_dating: FutureDating
    non_device: bool
    roles: frozenset[str]
    routes: tuple[Route, ...] = ()

    @property
    def service_reference(self) -> str:
        parts = self.srv.split(".")
        return ".".join(parts[:2])


# --- the SRV table (DUIS request matrix + XSD body names) ---------------------------------

_N, _DSP, _DEV, _BOTH = (
    FutureDating.NONE, FutureDating.DSP, FutureDating.DEVICE, FutureDating.DSP_AND_DEVICE
)

# srv, name, body element, critical, future dating, non-device, eligible roles
# fmt: off
_SRVS: tuple[tuple[str, str, str, bool, FutureDating, bool, str], ...] = (
    ("1.1.1", "Update Import Tariff (Primary Element)", "UpdateImportTariffPrimaryElement", True, _DEV, False, "IS GS"),
    ("1.1.2", "Update Import Tariff (Secondary Element)", "UpdateImportTariffSecondaryElement", True, _DEV, False, "IS"),
    ("1.2.1", "Update Price (Primary Element)", "UpdatePricePrimaryElement", True, _DEV, False, "IS GS"),
    ("1.2.2", "Update Price (Secondary Element)", "UpdatePriceSecondaryElement", True, _DEV, False, "IS"),
    ("1.5", "Update Meter Balance", "UpdateMeterBalance", True, _N, False, "IS GS"),
    ("1.6", "Update Payment Mode", "UpdatePaymentMode", True, _DEV, False, "IS GS"),
    ("1.7", "Reset Tariff Block Counter Matrix", "ResetTariffBlockCounterMatrix", True, _N, False, "IS"),
    ("2.1", "Update Prepay Configuration", "UpdatePrepayConfiguration", True, _DEV, False, "IS GS"),
    ("2.2", "Top Up Device", "TopUpDevice", False, _N, False, "IS GS"),
    ("2.3", "Update Debt", "UpdateDebt", True, _N, False, "IS GS"),
    ("2.5", "Activate Emergency Credit", "ActivateEmergencyCredit", True, _N, False, "IS GS"),
    ("3.1", "Display Message", "DisplayMessage", False, _DSP, False, "IS GS"),
    ("3.2", "Restrict Access For Change Of Tenancy", "RestrictAccessForChangeOfTenancy", False, _DSP, False, "IS GS"),
    ("3.3", "Clear Event Log", "ClearEventLog", False, _N, False, "IS GS"),
    ("3.4", "Update Supplier Name", "UpdateSupplierName", False, _DSP, False, "IS GS"),
    ("3.5", "Disable Privacy PIN", "DisablePrivacyPIN", False, _N, False, "IS GS"),
    ("4.1.1", "Read Instantaneous Import Registers", "ReadInstantaneousImportRegisters", False, _DSP, False, "IS GS ED GT"),
    ("4.1.2", "Read Instantaneous Import TOU Matrices", "ReadInstantaneousImportTOUMatrices", False, _DSP, False, "IS GS ED GT"),
    ("4.1.3", "Read Instantaneous Import TOU With Blocks Matrices", "ReadInstantaneousImportTOUWithBlocksMatrices", False, _DSP, False, "IS ED"),
    ("4.1.4", "Read Instantaneous Import Block Counters", "ReadInstantaneousImportBlockCounters", False, _DSP, False, "GS"),
    ("4.2", "Read Instantaneous Export Registers", "ReadInstantaneousExportRegisters", False, _DSP, False, "ES ED"),
    ("4.3", "Read Instantaneous Prepay Values", "ReadInstantaneousPrepayValues", False, _DSP, False, "IS GS"),
    ("4.4.2", "Retrieve Change Of Mode / Tariff Triggered Billing Data Log", "RetrieveCoMOrTariffTriggeredBillingDataLog", False, _DSP, False, "IS GS"),
    ("4.4.3", "Retrieve Billing Calendar Triggered Billing Data Log", "RetrieveBillingCalendarTriggeredBillingDataLog", False, _DSP, False, "IS GS"),
    ("4.4.4", "Retrieve Billing Data Log (Payment Based Debt Payments)", "RetrieveBillingDataLogDebtPayments", False, _DSP, False, "GS IS"),
    ("4.4.5", "Retrieve Billing Data Log (Prepayment Credits)", "RetrieveBillingDataLogPrepaymentCredits", False, _DSP, False, "GS IS"),
    ("4.6.1", "Retrieve Import Daily Read Log", "RetrieveImportDailyReadLog", False, _DSP, False, "IS GS"),
    ("4.6.2", "Retrieve Export Daily Read Log", "RetrieveExportDailyReadLog", False, _DSP, False, "ES"),
    ("4.8.1", "Read Active Import Profile Data", "ReadActiveImportProfileData", False, _DSP, False, "IS GS ED GT OU"),
    ("4.8.2", "Read Reactive Import Profile Data", "ReadReactiveImportProfileData", False, _DSP, False, "IS ED OU"),
    ("4.8.3", "Read Export Profile Data", "ReadExportProfileData", False, _DSP, False, "ES ED OU"),
    ("4.10", "Read Network Data", "ReadNetworkData", False, _DSP, False, "IS GS ED GT"),
    ("4.11.1", "Read Tariff (Primary Element)", "ReadTariffPrimaryElement", False, _N, False, "IS GS OU"),
    ("4.11.2", "Read Tariff (Secondary Element)", "ReadTariffSecondaryElement", False, _N, False, "IS OU"),
    ("4.12.1", "Read Maximum Demand Import Registers", "ReadMaximumDemandImportRegisters", False, _DSP, False, "IS ED"),
    ("4.12.2", "Read Maximum Demand Export Registers", "ReadMaximumDemandExportRegisters", False, _DSP, False, "ES ED"),
    ("4.13", "Read Prepayment Configuration", "ReadPrepaymentConfiguration", False, _DSP, False, "IS GS"),
    ("4.14", "Read Prepayment Daily Read Log", "ReadPrepaymentDailyReadLog", False, _DSP, False, "IS GS"),
    ("4.15", "Read Load Limit Data", "ReadLoadLimitData", False, _DSP, False, "IS ED"),
    ("4.16", "Read Active Power Import", "ReadActivePowerImport", False, _N, False, "IS ED"),
    ("4.17", "Retrieve Daily Consumption Log", "RetrieveDailyConsumptionLog", False, _DSP, False, "IS GS ED GT OU"),
    ("4.18", "Read Meter Balance", "ReadMeterBalance", False, _DSP, False, "IS GS"),
    ("5.1", "Create Schedule", "CreateSchedule", False, _N, True, "IS ES GS ED GT OU"),
    ("5.2", "Read Schedule", "ReadSchedule", False, _N, True, "IS ES GS ED GT OU"),
    ("5.3", "Delete Schedule", "DeleteSchedule", False, _N, True, "IS ES GS ED GT OU"),
    ("6.2.1", "Read Device Configuration (Voltage)", "ReadDeviceConfigurationVoltage", False, _N, False, "IS RSA ED"),
    ("6.2.2", "Read Device Configuration (Randomisation)", "ReadDeviceConfigurationRandomisation", False, _N, False, "IS RSA ED"),
    ("6.2.3", "Read Device Configuration (Billing Calendar)", "ReadDeviceConfigurationBillingCalendar", False, _N, False, "IS RSA GS"),
    ("6.2.4", "Read Device Configuration (Identity Exc MPxN)", "ReadDeviceConfigurationIdentityExcMPxN", False, _N, False, "IS ES GS RSA ED GT OU"),
    ("6.2.5", "Read Device Configuration (Instantaneous Power Thresholds)", "ReadDeviceConfigurationInstantaneousPowerThresholds", False, _N, False, "IS RSA"),
    ("6.2.7", "Read Device Configuration (MPxN)", "ReadDeviceConfigurationMPxN", False, _N, False, "IS ES GS RSA ED GT OU"),
    ("6.2.8", "Read Device Configuration (Gas)", "ReadDeviceConfigurationGas", False, _N, False, "GS RSA GT"),
    ("6.2.9", "Read Device Configuration (Payment Mode)", "ReadDeviceConfigurationPaymentMode", False, _N, False, "IS GS RSA"),
    ("6.2.10", "Read Device Configuration (Event and Alert Behaviours)", "ReadDeviceConfigurationEventAndAlertBehaviours", False, _N, False, "IS GS ED"),
    ("6.4.1", "Update Device Configuration (Load Limiting General Settings)", "UpdateDeviceConfigurationLoadLimitingGeneralSettings", True, _DEV, False, "IS"),
    ("6.4.2", "Update Device Configuration (Load Limiting Counter Reset)", "UpdateDeviceConfigurationLoadLimitingCounterReset", False, _DSP, False, "IS"),
    ("6.5", "Update Device Configuration (Voltage)", "UpdateDeviceConfigurationVoltage", False, _DSP, False, "ED"),
    ("6.6", "Update Device Configuration (Gas Conversion)", "UpdateDeviceConfigurationGasConversion", True, _N, False, "GS"),
    ("6.7", "Update Device Configuration (Gas Flow)", "UpdateDeviceConfigurationGasFlow", True, _N, False, "GS"),
    ("6.8", "Update Device Configuration (Billing Calendar)", "UpdateDeviceConfigurationBillingCalendar", True, _N, False, "IS GS"),
    ("6.11", "Synchronise Clock", "SynchroniseClock", True, _N, False, "IS GS"),
    ("6.12", "Update Device Configuration (Instantaneous Power Threshold)", "UpdateDeviceConfigurationInstantaneousPowerThreshold", False, _DSP, False, "IS"),
    ("6.13", "Read Event Or Security Log", "ReadEventOrSecurityLog", False, _N, False, "IS GS ED GT RSA"),
    ("6.14.1", "Update Device Configuration (Auxiliary Load Control Description)", "UpdateDeviceConfigurationALCDescriptions", True, _N, False, "IS"),
    ("6.14.2", "Update Device Configuration (Auxiliary Load Control Scheduler)", "UpdateDeviceConfigurationALCScheduler", True, _DEV, False, "IS"),
    ("6.14.3", "Update Device Configuration (Auxiliary Controller Scheduler)", "UpdateDeviceConfigurationAuxiliaryControllerScheduler", True, _DEV, False, "IS"),
    ("6.15.1", "Update Security Credentials (KRP)", "UpdateSecurityCredentialsKRP", True, _DEV, False, "IS GS ED GT"),
    ("6.15.2", "Update Security Credentials (Device)", "UpdateSecurityCredentialsDevice", True, _N, False, "IS GS"),
    ("6.17", "Issue Security Credentials", "IssueSecurityCredentials", True, _N, False, "IS GS"),
    ("6.18.1", "Set Maximum Demand Configurable Time Period", "SetMaximumDemandConfigurableTimePeriod", False, _DSP, False, "ED"),
    ("6.18.2", "Reset Maximum Demand Registers", "ResetMaximumDemandRegisters", False, _DSP, False, "ED"),
    ("6.20.1", "Set Device Configuration (Import MPxN)", "SetDeviceConfigurationImportMPxN", False, _DSP, False, "IS GS"),
    ("6.20.2", "Set Device Configuration (Export MPAN)", "SetDeviceConfigurationExportMPAN", False, _DSP, False, "ES"),
    ("6.21", "Request Handover Of DCC Controlled Device", "RequestHandoverOfDCCControlledDevice", False, _DSP, False, "IS GS"),
    ("6.22", "Configure Alert Behaviour", "ConfigureAlertBehaviour", False, _N, False, "IS GS ED"),
    ("6.23", "Update Security Credentials (CoS)", "UpdateSecurityCredentialsCoS", False, _BOTH, False, "IS GS"),
    ("6.24.1", "Retrieve Device Security Credentials (KRP)", "RetrieveDeviceSecurityCredentialsKRP", False, _N, False, "IS GS ED GT"),
    ("6.24.2", "Retrieve Device Security Credentials (Device)", "RetrieveDeviceSecurityCredentialsDevice", True, _N, False, "IS GS"),
    ("6.25", "Set Electricity Supply Tamper State", "SetElectricitySupplyTamperState", True, _N, False, "IS"),
    ("6.26", "Update Device Configuration (daily resetting of Tariff Block Counter Matrix)", "UpdateDeviceConfigurationDailyResettingOfTariffBlockCounterMatrix", True, _N, False, "IS"),
    ("6.27", "Update Device Configuration (RMS Voltage Counter Reset)", "UpdateDeviceConfigurationRMSVoltageCounterReset", False, _DSP, False, "ED"),
    ("6.28", "Set CHF Sub GHz Configuration", "SetCHFSubGHzConfiguration", False, _N, False, "IS GS"),
    ("6.29", "Request CHF Sub GHz Channel Scan", "RequestCHFSubGHzChannelScan", False, _N, False, "IS GS"),
    ("6.30", "Read CHF Sub GHz Configuration", "ReadCHFSubGHzConfiguration", False, _N, False, "IS GS RSA"),
    ("6.31", "Read CHF Sub GHz Channel", "ReadCHFSubGHzChannel", False, _N, False, "IS GS RSA"),
    ("6.32", "Read CHF Sub GHz Channel Log", "ReadCHFSubGHzChannelLog", False, _N, False, "IS GS RSA"),
    ("7.1", "Enable Supply", "EnableSupply", True, _N, False, "IS"),
    ("7.2", "Disable Supply", "DisableSupply", True, _N, False, "IS GS"),
    ("7.3", "Arm Supply", "ArmSupply", True, _N, False, "IS GS"),
    ("7.4", "Read Supply Status", "ReadSupplyStatus", False, _N, False, "IS ES GS RSA ED GT"),
    ("7.5", "Activate Auxiliary Load", "ActivateAuxiliaryLoad", True, _N, False, "IS"),
    ("7.6", "Deactivate Auxiliary Load", "DeactivateAuxiliaryLoad", True, _N, False, "IS"),
    ("7.7", "Read Auxiliary Load Switch Data", "ReadALCSData", False, _DSP, False, "IS ED OU"),
    ("7.8", "Reset Auxiliary Load", "ResetAuxiliaryLoad", True, _N, False, "IS"),
    ("7.9", "Add Auxiliary Load To Boost Button", "AddAuxiliaryLoadToBoostButton", False, _DSP, False, "IS"),
    ("7.10", "Remove Auxiliary Load From Boost Button", "RemoveAuxiliaryLoadFromBoostButton", False, _DSP, False, "IS"),
    ("7.11", "Read Boost Button Details", "ReadBoostButtonDetails", False, _DSP, False, "IS OU"),
    ("7.12", "Set Randomised Offset Limit", "SetRandomisedOffsetLimit", True, _N, False, "IS"),
    ("7.13", "Set Auxiliary Controller State", "SetAuxiliaryControllerState", True, _N, False, "IS"),
    ("7.14", "Read Auxiliary Controller Configuration Data", "ReadAuxiliaryControllerConfigurationData", False, _DSP, False, "IS ED OU"),
    ("7.15", "Read Auxiliary Controller Operational Data", "ReadAuxiliaryControllerOperationalData", False, _DSP, False, "IS ED OU"),
    ("7.16", "Limit APC Level", "LimitAPCLevel", True, _N, False, ""),
    ("8.1.1", "Commission Device", "CommissionDeviceSynchroniseClock", True, _N, False, "IS GS"),
    ("8.2", "Read Inventory", "ReadInventory", False, _N, True, "IS ES GS RSA ED GT OU"),
    ("8.3", "Decommission Device", "DecommissionDevice", False, _N, True, "IS GS"),
    ("8.4", "Update Inventory", "UpdateInventory", False, _N, True, "IS ES GS RSA ED GT OU"),
    ("8.5", "Service Opt Out", "ServiceOptOut", False, _DSP, False, ""),
    ("8.6", "Service Opt In", "ServiceOptIn", False, _N, True, ""),
    ("8.7.1", "Join Service (Critical)", "JoinServiceCritical", True, _N, False, "IS GS"),
    ("8.7.2", "Join Service (Non-Critical)", "JoinServiceNonCritical", False, _N, False, "IS GS OU"),
    ("8.8.1", "Unjoin Service (Critical)", "UnjoinServiceCritical", True, _N, False, "IS GS"),
    ("8.8.2", "Unjoin Service (Non-Critical)", "UnjoinServiceNonCritical", False, _N, False, "IS GS OU"),
    ("8.9", "Read Device Log", "ReadDeviceLog", False, _DSP, False, "IS GS OU"),
    ("8.11", "Update HAN Device Log", "UpdateHANDeviceLog", False, _DSP, False, "IS GS OU"),
    ("8.12.1", "Restore HAN Device Log", "RestoreHANDeviceLog", False, _N, False, "IS GS"),
    ("8.12.2", "Restore Gas Proxy Function Device Log", "RestoreGPFDeviceLog", False, _N, False, "IS GS"),
    ("8.13", "Return Local Command Response", "ReturnLocalCommandResponse", False, _N, True, "IS GS"),
    ("8.14.1", "Communications Hub Status Update - Install Success", "CHFInstallSuccessSMWAN", False, _N, True, "IS GS"),
    ("8.14.2", "Communications Hub Status Update - Install No SM WAN", "CHFInstallSuccessNoSMWAN", False, _N, True, "IS GS"),
    ("8.14.3", "Communications Hub Status Update - Fault Return", "CHFFaultReturn", False, _N, True, "IS GS"),
    ("8.14.4", "Communications Hub Status Update - No Fault Return", "CHFNoFaultReturn", False, _N, True, "IS GS"),
    ("9.1", "Request Customer Identification Number", "RequestCustomerIdentificationNumber", False, _N, False, "OU"),
    ("11.1", "Update Firmware", "UpdateFirmware", False, _N, True, "IS GS"),
    ("11.2", "Read Firmware Version", "ReadFirmwareVersion", False, _DSP, False, "IS ES GS RSA ED GT OU"),
    ("11.3", "Activate Firmware", "ActivateFirmware", True, _DEV, False, "IS GS"),
    ("11.4", "Update PPMID Firmware", "UpdatePPMIDFirmware", False, _N, True, "IS GS"),
    ("12.1", "Request WAN Matrix", "RequestWANMatrix", False, _N, True, "IS ES GS RSA ED GT OU"),
    ("12.2", "Device Pre-notification", "DevicePrenotification", False, _N, True, "IS ES GS RSA ED GT OU"),
    ("14.1", "Record Network Data (GAS)", "RecordNetworkDataGAS", False, _N, False, "GT"),
)
# fmt: on

# --- the routes ---------------------------------------------------------------------------

_U, _AU, _A, _T = (
    Originator.USER, Originator.ACB_FOR_USER, Originator.ACB, Originator.TRANSITIONAL_COS
)
_E = frozenset({ESME})
_G = frozenset({GSME})
_GG = GAS
_C = frozenset({CHF})
_EC = frozenset({ESME, CHF})
_HAN = frozenset({PPMID, HCALCS})


def _r(
    use_case: str, code: int, devices: frozenset[str], originator: Originator = _U, *,
    signed: bool | None = None, when: tuple[Condition, ...] = (), roles: str = "",
) -> tuple[str, int, frozenset[str], Originator, bool | None, tuple[Condition, ...], str]:
    return use_case, code, devices, originator, signed, when, roles


_RouteRow = tuple[str, int, frozenset[str], Originator, "bool | None", tuple[Condition, ...], str]

# ``signed=None``: signed exactly when the SRV is critical (the User signs a pre-command).
_ROUTES: dict[str, tuple[_RouteRow, ...]] = {
    "1.1.1": (_r("ECS01a", 0x0019, _E), _r("GCS01a", 0x006B, _G)),
    "1.1.2": (_r("ECS01c", 0x00B7, _E),),
    "1.2.1": (_r("ECS01b", 0x00A2, _E), _r("GCS01b", 0x00A3, _G)),
    "1.2.2": (_r("ECS01d", 0x00C7, _E),),
    "1.5": (
        _r("ECS04a", 0x001C, _E, when=(present("PrepaymentMode/AdjustMeterBalance"),)),
        _r("ECS04a", 0x001C, _E, when=(present("CreditMode/AdjustMeterBalance"),)),
        _r("ECS04b", 0x00B3, _E, when=(present("PrepaymentMode/ResetMeterBalance"),)),
        _r("ECS04b", 0x00B3, _E, when=(present("CreditMode/ResetMeterBalance"),)),
        _r("GCS40a", 0x0086, _G, when=(present("PrepaymentMode/AdjustMeterBalance"),)),
        _r("GCS40b", 0x00B4, _G, when=(present("PrepaymentMode/ResetMeterBalance"),)),
        _r("GCS40c", 0x00C0, _G, when=(present("CreditMode/AdjustMeterBalance"),)),
        _r("GCS40d", 0x00C2, _G, when=(present("CreditMode/ResetMeterBalance"),)),
    ),
    "1.6": (
        _r("ECS02", 0x001A, _E, when=(present("Credit"),)),
        _r("ECS03", 0x001B, _E, when=(present("Prepayment"),)),
        _r("GCS02", 0x006C, _G, when=(present("Credit"),)),
        _r("GCS03", 0x006D, _G, when=(present("Prepayment"),)),
    ),
    "1.7": (_r("ECS05", 0x001D, _E),),
    "2.1": (
        _r("ECS08", 0x001F, _E), _r("ECS08a", 0x00DE, _E), _r("GCS05", 0x006F, _G),
    ),
    "2.2": (_r("CS01a", 0x0007, _E), _r("CS01b", 0x0097, _G)),
    "2.3": (_r("ECS07", 0x001E, _E), _r("GCS04", 0x006E, _G)),
    "2.5": (_r("ECS09", 0x0020, _E), _r("GCS06", 0x0070, _G)),
    "3.1": (_r("ECS10", 0x0021, _E), _r("GCS07", 0x0071, _G)),
    "3.2": (_r("ECS12", 0x0022, _E), _r("GCS09", 0x0072, frozenset({GPF}))),
    "3.3": (
        _r("ECS15a", 0x0024, _E, when=(absent("ESMEEventLogType"),)),
        _r("ECS15a", 0x0024, _E, when=(equals("ESMEEventLogType", "ESME"),)),
        _r("ECS15c", 0x00C1, _E, when=(equals("ESMEEventLogType", "ALCS"),)),
        _r("CS11", 0x0015, _GG),
    ),
    "3.4": (_r("ECS16", 0x0025, _E), _r("GCS44", 0x0088, _G)),
    "3.5": (_r("ECS14", 0x0023, _E), _r("GCS11", 0x0073, _G)),
    "4.1.1": (_r("ECS17b", 0x0027, _E), _r("GCS13a", 0x0074, _GG)),
    "4.1.2": (_r("ECS17d", 0x0029, _E), _r("GCS13c", 0x00B6, _GG)),
    "4.1.3": (_r("ECS17e", 0x002A, _E),),
    "4.1.4": (_r("GCS13b", 0x00B8, _GG),),
    "4.2": (_r("ECS17a", 0x0026, _E),),
    "4.3": (_r("ECS19", 0x002D, _E), _r("GCS14", 0x0075, _GG)),
    "4.4.2": (_r("ECS20b", 0x002F, _E), _r("GCS15b", 0x00C3, _GG)),
    "4.4.3": (_r("ECS20c", 0x0030, _E), _r("GCS15c", 0x0076, _GG)),
    "4.4.4": (_r("ECS20a", 0x002E, _E), _r("GCS15d", 0x00C4, _GG, _AU)),
    "4.4.5": (_r("ECS20d", 0x00C9, _E), _r("GCS15e", 0x00C5, _GG)),
    "4.6.1": (_r("ECS21a", 0x0033, _E), _r("GCS16a", 0x0077, _GG)),
    "4.6.2": (_r("ECS21c", 0x0035, _E, _AU),),
    "4.8.1": (_r("ECS22b", 0x0037, _E), _r("GCS17", 0x0078, _GG)),
    "4.8.2": (_r("ECS22c", 0x0038, _E),),
    "4.8.3": (_r("ECS22a", 0x0036, _E),),
    "4.10": (_r("ECS23", 0x0039, _E), _r("ECS23b", 0x00BC, _E), _r("GCS18", 0x0079, _GG)),
    "4.11.1": (_r("ECS24", 0x003A, _E), _r("GCS21f", 0x009F, _GG)),
    "4.11.2": (_r("ECS24b", 0x00BD, _E),),
    "4.12.1": (_r("ECS18b", 0x002C, _E),),
    "4.12.2": (_r("ECS18a", 0x002B, _E),),
    "4.13": (_r("ECS26a", 0x003B, _E), _r("GCS21b", 0x00B5, _GG)),
    "4.14": (_r("ECS21b", 0x0034, _E), _r("GCS16b", 0x0096, _GG)),
    "4.15": (_r("ECS27", 0x0042, _E),),
    "4.16": (_r("ECS17c", 0x0028, _E),),
    "4.17": (_r("ECS66", 0x0060, _E), _r("GCS61", 0x00A0, _GG)),
    "4.18": (_r("ECS82", 0x0069, _E), _r("GCS60", 0x008D, _GG), _r("GCS60a", 0x012A, _GG)),
    "6.2.1": (_r("ECS26b", 0x003C, _E), _r("ECS26k", 0x00C6, _E)),
    "6.2.2": (_r("ECS26c", 0x003D, _E),),
    "6.2.3": (
        _r("ECS26d", 0x003E, _E), _r("ECS26l", 0x00D9, _E),
        _r("GCS21d", 0x009D, _GG), _r("GCS21k", 0x00DA, _GG),
    ),
    "6.2.4": (
        _r("ECS26e", 0x003F, _E), _r("ECS26m", 0x00F9, _E),
        _r("ECS26i", 0x0092, _C, _AU), _r("ECS26n", 0x00FA, _C, _AU),
        _r("GCS21e", 0x009E, _GG), _r("GCS21m", 0x00FB, _G),
    ),
    "6.2.5": (_r("ECS26f", 0x0040, _E),),
    "6.2.7": (_r("ECS40", 0x004E, _E), _r("GCS46", 0x0089, _GG)),
    "6.2.8": (_r("GCS21a", 0x007B, _GG),),
    "6.2.9": (_r("ECS26j", 0x00BE, _E), _r("GCS21j", 0x00BF, _GG)),
    "6.2.10": (
        _r("ECS25r1", 0x00EE, _E, roles="IS"), _r("ECS25r2", 0x00EF, _E, roles="ED"),
        _r("GCS20r", 0x00F1, _G),
    ),
    "6.4.1": (_r("ECS28a", 0x0043, _E),),
    "6.4.2": (_r("ECS28b", 0x0044, _E),),
    "6.5": (
        _r("ECS29a", 0x0045, _E, when=(present("SinglePhaseVoltageSettings"),
                                       absent("RMSVoltageCountersNotReset"))),
        _r("ECS29b", 0x00AE, _E, when=(present("PolyPhaseVoltageSettings"),
                                       absent("RMSVoltageCountersNotReset"))),
        _r("ECS29c", 0x00D1, _E, when=(present("SinglePhaseVoltageSettings"),
                                       present("RMSVoltageCountersNotReset"))),
        _r("ECS29d", 0x00D2, _E, when=(present("PolyPhaseVoltageSettings"),
                                       present("RMSVoltageCountersNotReset"))),
    ),
    "6.6": (_r("GCS23", 0x007C, _G),),
    "6.7": (
        _r("GCS24", 0x007D, _G, when=(present("UncontrolledGasFlowRate"),)),
        _r("GCS24a", 0x00FC, _G, when=(present("UncontrolledGasFlowRateDecimal"),)),
    ),
    "6.8": (
        _r("ECS30", 0x0046, _E, when=(present("ElectricityBillingCalendar/Monthly"),)),
        _r("ECS30a", 0x00D7, _E),
        _r("GCS25", 0x007E, _G, when=(equals("GasBillingCalendar/Periodicity", "Monthly"),)),
        _r("GCS25a", 0x00D8, _G),
    ),
    "6.11": (_r("ECS70", 0x0062, _E), _r("GCS28", 0x007F, _G)),
    "6.12": (_r("ECS34", 0x0047, _E),),
    "6.13": (
        _r("ECS35a", 0x0048, _E, when=(equals("LogToRead", "Event"),)),
        _r("ECS35b", 0x0049, _E, when=(equals("LogToRead", "Security"),)),
        _r("ECS35e", 0x00B9, _E, when=(equals("LogToRead", "PowerEvent"),)),
        _r("ECS35g", 0x00FD, _E, when=(equals("LogToRead", "ALCSEvent"),)),
        _r("ECS35f", 0x00BA, _E, when=(equals("LogToRead", "ALCSEvent"),)),
        _r("ECS35c", 0x0093, _C, _AU, when=(equals("LogToRead", "Event"),)),
        _r("ECS35d", 0x0094, _C, _AU, when=(equals("LogToRead", "Security"),)),
        _r("CS10a", 0x0014, _GG, when=(equals("LogToRead", "Event", "GSMEEvent"),)),
        _r("CS10b", 0x00A1, _GG, when=(equals("LogToRead", "Security", "GSMESecurity"),)),
    ),
    "6.14.1": (_r("ECS46a", 0x0053, _E),),
    "6.14.2": (_r("ECS46c", 0x0054, _E),),
    "6.14.3": (_r("ECS46d", 0x011A, _E),),
    "6.15.1": (
        _r("CS02bSupplierBySupplier", 0x0102, _E | _GG,
           when=(equals("RemotePartyRole", "Supplier"),)),
        _r("CS02bNOByNO", 0x0103, _E, when=(equals("RemotePartyRole", "NetworkOperator"),)),
        _r("CS02gLoadControllerBySupplier", 0x0126, _E,
           when=(equals("RemotePartyRole", "LoadController"),)),
    ),
    "6.15.2": (_r("CS02d", 0x000B, _E | _GG | _C | _HAN),),
    "6.17": (_r("CS02c", 0x000A, _E | _GG | _C | _HAN),),
    "6.18.1": (_r("ECS37", 0x004A, _E),),
    "6.18.2": (_r("ECS57", 0x005A, _E),),
    "6.20.1": (_r("ECS39a", 0x004C, _E), _r("GCS41", 0x0087, _G)),
    "6.20.2": (_r("ECS39b", 0x004D, _E, _AU),),
    "6.21": (
        _r("CS02bSupplierBySupplierHandover", 0x0102, _E | _GG, _A, signed=True,
           when=(equals("RemotePartyRole", "Supplier"),)),
        _r("CS02bNOByNOHandover", 0x0103, _E | _GG, _A, signed=True,
           when=(equals("RemotePartyRole", "NetworkOperator"),)),
    ),
    "6.22": (
        _r("ECS25a", 0x00AC, _E, when=(present("ElectricitySupplierAlerts"),)),
        _r("ECS25a1", 0x00EA, _E, when=(present("ElectricitySupplierHANAlertSettings"),)),
        _r("ECS25a2", 0x00EB, _E, when=(present("ElectricitySupplierAlarmSettings"),)),
        _r("ECS25a3", 0x00EC, _E, when=(present("ElectricitySupplierLoggingSettings"),)),
        _r("ECS25b", 0x00B0, _E, when=(present("ElectricityNetworkOperatorAlerts"),)),
        _r("ECS25b3", 0x00ED, _E, when=(present("ElectricityNetworkOperatorLoggingSettings"),)),
        _r("GCS20", 0x00AD, _G, when=(present("GasSupplierAlertEventSettings"),)),
        _r("GCS20", 0x00AD, _G, when=(present("GasSupplierAlerts"),)),
    ),
    "6.23": (_r("CS02bSupplierByTransCoS", 0x0107, _E | _GG, _T, signed=True),),
    "6.24.1": (_r("CS02fMAC", 0x011B, _E, _A), _r("CS02aMAC", 0x0008, _E | _GG, _A)),
    "6.24.2": (_r("CS02e", 0x000C, _E | _GG | _C | _HAN),),
    "6.25": (_r("ECS81", 0x0068, _E),),
    "6.26": (_r("ECS48", 0x00DB, _E),),
    "6.27": (_r("ECS29e", 0x00D3, _E), _r("ECS29f", 0x00D4, _E)),
    "6.28": (_r("DBCH04", 0x010D, _C, _AU),),
    "6.29": (_r("DBCH05", 0x010E, _C, _AU),),
    "6.30": (_r("DBCH03", 0x010C, _C, _AU),),
    "6.31": (_r("DBCH01", 0x010A, _C, _AU),),
    "6.32": (_r("DBCH02", 0x010B, _C, _AU),),
    "7.1": (_r("ECS42", 0x004F, _E),),
    "7.2": (_r("ECS43", 0x0050, _E), _r("GCS32", 0x0081, _G)),
    "7.3": (_r("ECS44", 0x0051, _E), _r("GCS39", 0x0085, _G)),
    "7.4": (_r("ECS45", 0x0052, _E), _r("GCS33", 0x0082, _G)),
    "7.5": (_r("ECS47Activate", 0x0055, _E),),
    "7.6": (_r("ECS47Deactivate", 0x0055, _E),),
    "7.7": (_r("ECS61a", 0x00BB, _E),),
    "7.8": (_r("ECS47Reset", 0x0055, _E),),
    "7.9": (_r("ECS62Add", 0x005F, _E),),
    "7.10": (_r("ECS62Remove", 0x005F, _E),),
    "7.11": (_r("ECS61c", 0x005E, _E),),
    "7.12": (_r("ECS38", 0x004B, _E),),
    "7.13": (_r("ECS47a", 0x011E, _E),),
    "7.14": (_r("ECS61d", 0x011C, _E, _AU),),
    "7.15": (_r("ECS61e", 0x011D, _E),),
    "7.16": (_r("ECS47e", 0x011F, _E),),
    "8.1.1": (_r("ECS70Commission", 0x0062, _E), _r("GCS28Commission", 0x007F, _G)),
    "8.5": (_r("CS02bACBByACB", 0x0104, _E | _GG | _C | _HAN, _A, signed=False),),
    "8.7.1": (
        _r("CS03A1", 0x000D, _E, when=(other_device("OtherDeviceID", PPMID, HCALCS),)),
        _r("CS03C", 0x00AF, _G, when=(other_device("OtherDeviceID", PPMID, HCALCS),)),
        _r("CS03A2", 0x00AB, _HAN, when=(other_device("OtherDeviceID", ESME),)),
        _r("CS03C", 0x00AF, _HAN, when=(other_device("OtherDeviceID", GSME),)),
    ),
    "8.7.2": (
        _r("CS03B", 0x000E, METERS, when=(other_device("OtherDeviceID", *TYPE2_DEVICES),)),
        _r("CS03A2", 0x00AB, _HAN, _AU, signed=True,
           when=(other_device("OtherDeviceID", ESME),)),
        _r("CS03C", 0x00AF, _HAN, _AU, signed=True,
           when=(other_device("OtherDeviceID", GSME),)),
    ),
    "8.8.1": (_r("CS04AC", 0x000F, METERS | _HAN),),
    "8.8.2": (
        _r("CS04B", 0x0010, METERS),
        _r("CS04AC", 0x000F, _HAN, _AU, signed=True),
    ),
    "8.9": (
        _r("CCS07", 0x00FE, _C, _AU, when=(present("ReadSecurityDetails"),)),
        _r("CCS05CCS04", 0x0004, _C, _AU, when=(absent("ReadSecurityDetails"),)),
        _r("CCS06", 0x010F, _C, _AU, when=(absent("ReadSecurityDetails"),)),
        _r("CS07", 0x0013, _GG | _E | _HAN, _AU),
    ),
    "8.11": (
        _r("CCS01", 0x0001, _C, _AU, when=(equals("RequestType", "Add"),)),
        _r("CCS02", 0x0002, _C, _AU, when=(equals("RequestType", "Remove"),)),
    ),
    "8.12.1": (_r("CCS03", 0x0003, _C, _AU),),
    "8.12.2": (_r("GCS59", 0x008C, frozenset({GPF}), _AU),),
    "9.1": (_r("ECS50", 0x0058, _E, _AU), _r("GCS36", 0x0083, _G, _AU)),
    "11.2": (
        _r("ECS52", 0x0059, _EC),
        _r("GCS38", 0x0084, _G),
        _r("CS08", 0x0129, _HAN, _AU),
    ),
    "11.3": (_r("CS06", 0x0012, _E | _G | _C | _HAN),),
    "14.1": (_r("GCS31", 0x0080, _G, _AU),),
}


def _build() -> dict[str, ServiceVariant]:
    table: dict[str, ServiceVariant] = {}
    for srv, name, body, critical, future, non_device, roles in _SRVS:
        routes = tuple(
            Route(
                uc, code, devices, originator,
                critical if signed is None else signed,
                when, frozenset(role_text.split()),
            )
            for uc, code, devices, originator, signed, when, role_text in _ROUTES.get(srv, ())
        )
        table[srv] = ServiceVariant(
            srv, name, body, critical, future, non_device, frozenset(roles.split()), routes
        )
    unknown = set(_ROUTES) - set(table)
    if unknown:
        raise ValueError(f"routes for unknown SRVs: {sorted(unknown)}")
    return table


#: Every service reference variant of DUIS V5.4, by SRV text.
SERVICE_VARIANTS: Mapping[str, ServiceVariant] = MappingProxyType(_build())


def service_variant(srv: str) -> ServiceVariant | None:
    return SERVICE_VARIANTS.get(srv)


def routes_for_use_case(use_case: str) -> list[tuple[ServiceVariant, Route]]:
    """Every (SRV, route) pair a GBCS use case serves (documentation, tests)."""
    return [
        (sv, r) for sv in SERVICE_VARIANTS.values() for r in sv.routes if r.use_case == use_case
    ]
