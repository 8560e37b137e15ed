"""Catalogue of ZigBee ZCL / Smart Energy identifiers and GBZ constants, as data.

The GBZ and ZCL codecs (:mod:`gbhil.gbcs.gbz`, :mod:`gbhil.gbcs.zcl`) take every
number they test against from here, so the wire rules live in one place and the
JSON view can name what it shows.

Sources: cluster, command, attribute, data type and status identifiers are the
published ZigBee Cluster Library (ZCL) and ZigBee Smart Energy (ZSE 1.x)
values; the attribute set is the one GBCS uses for GSME/GPF (all names in
ATTRIBUTES are attributes read or written somewhere in the RTDS 4.5.0 corpus,
plus the Basic/Time cluster attributes). GBZ framing constants come from
gbcs-facts 3.2 and were checked on the RTDS corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# ---------------------------------------------------------------------------
# GBZ framing (gbcs-facts 3.2)
# ---------------------------------------------------------------------------

#: GBZ profile identifier, the first two content bytes (ZigBee Smart Energy profile).
GBZ_PROFILE_ID: Final = 0x0109
#: Extended header control: this component is the last one.
GBZ_CTRL_LAST: Final = 0x01
#: Extended header control: the ZCL payload is an encrypted block (gbcs-facts 2.5).
GBZ_CTRL_ENCRYPTED: Final = 0x02
#: Extended header control: a 4-byte from-date-time precedes the ZCL header.
GBZ_CTRL_FROM_DATETIME: Final = 0x10
#: Bits with a defined meaning; anything else is reserved and rejected.
GBZ_CTRL_KNOWN: Final = GBZ_CTRL_LAST | GBZ_CTRL_ENCRYPTED | GBZ_CTRL_FROM_DATETIME
#: GBZ timestamps are seconds since this instant (UTC), in big-endian uint32.
GBZ_EPOCH_ISO: Final = "2000-01-01T00:00:00Z"
#: From-date-time 0: execute immediately.
GBZ_FROM_DATETIME_IMMEDIATE: Final = 0x00000000
#: From-date-time all-ones: cancel / never.
GBZ_FROM_DATETIME_NEVER: Final = 0xFFFFFFFF
#: Smallest encrypted block: SC(1) + IC(4) + empty ciphertext + tag(12).
GBZ_MIN_ENCRYPTED_BLOCK: Final = 1 + 4 + 12
#: Future-dated alert body: length byte 0x0E then message code(2) counter(8)
#: cluster(2) frame control(1) command id(1) = 14 bytes.
GBZ_FUTURE_DATED_BODY_LEN: Final = 14
#: The FDRA hash is carried as a DLMS octet-string: tag 0x09, BER length, bytes.
DLMS_OCTET_STRING_TAG: Final = 0x09

#: GBZ alert body shapes selected by alert code (the alert code determines the
#: use case: 0x00CD future-dated, 0x00CF FDRA, 0x00F2 integrity warning).
ALERT_BODY_FUTURE_DATED: Final = "future-dated"
ALERT_BODY_FIRMWARE_RECEIPT: Final = "firmware-distribution-receipt"
ALERT_BODY_INTEGRITY_WARNING: Final = "meter-integrity-warning"
GBZ_ALERT_BODY_BY_CODE: Final[dict[int, str]] = {
    0x8F66: ALERT_BODY_FUTURE_DATED,  # future-dated command executed
    0x8F67: ALERT_BODY_FUTURE_DATED,  # future-dated command failed
    0x8F72: ALERT_BODY_FIRMWARE_RECEIPT,  # firmware verification successful (+ hash)
    0x81A0: ALERT_BODY_INTEGRITY_WARNING,  # meter integrity issue warning (+ reason)
}

#: Meter integrity issue warning reasons (2-byte big-endian, alert 0x81A0).
INTEGRITY_WARNING_REASONS: Final[dict[int, str]] = {
    0x0000: "Other",
    0x0001: "Error Non Volatile Memory",
    0x0002: "Error Program Execution",
    0x0003: "Error Program Storage",
    0x0004: "Error RAM",
    0x0005: "Error Unexpected Hardware Reset",
    0x0006: "Error Watchdog",
    0x0007: "Error Metrology Firmware Verification Failure",
    0x0008: "Error Measurement Fault",
    0x0009: "Unspecified Smart Meter Operational Integrity Error",
}

# ---------------------------------------------------------------------------
# ZCL frame header
# ---------------------------------------------------------------------------

#: Frame control bits 0-1: frame type.
ZCL_FC_FRAME_TYPE_MASK: Final = 0x03
ZCL_FRAME_TYPE_GLOBAL: Final = 0x00  # profile-wide ("general") command
ZCL_FRAME_TYPE_CLUSTER: Final = 0x01  # cluster-specific command
#: Frame control bit 2: a 2-byte manufacturer code follows the frame control.
ZCL_FC_MANUFACTURER_SPECIFIC: Final = 0x04
#: Frame control bit 3: 1 = server to client.
ZCL_FC_SERVER_TO_CLIENT: Final = 0x08
#: Frame control bit 4: disable default response.
ZCL_FC_DISABLE_DEFAULT_RESPONSE: Final = 0x10
#: Direction values as used in reporting records and in the command tables below.
DIRECTION_CLIENT_TO_SERVER: Final = 0
DIRECTION_SERVER_TO_CLIENT: Final = 1

# ---------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------

CLUSTER_BASIC: Final = 0x0000
CLUSTER_IDENTIFY: Final = 0x0003
CLUSTER_TIME: Final = 0x000A
CLUSTER_OTA: Final = 0x0019
CLUSTER_PRICE: Final = 0x0700
CLUSTER_DRLC: Final = 0x0701
CLUSTER_METERING: Final = 0x0702
CLUSTER_MESSAGING: Final = 0x0703
CLUSTER_TUNNELING: Final = 0x0704
CLUSTER_PREPAYMENT: Final = 0x0705
CLUSTER_ENERGY_MANAGEMENT: Final = 0x0706
CLUSTER_CALENDAR: Final = 0x0707
CLUSTER_DEVICE_MANAGEMENT: Final = 0x0708
CLUSTER_EVENTS: Final = 0x0709
CLUSTER_MDU_PAIRING: Final = 0x070A
CLUSTER_SUB_GHZ: Final = 0x070B
CLUSTER_KEY_ESTABLISHMENT: Final = 0x0800

CLUSTERS: Final[dict[int, str]] = {
    CLUSTER_BASIC: "Basic",
    CLUSTER_IDENTIFY: "Identify",
    CLUSTER_TIME: "Time",
    CLUSTER_OTA: "OTA Upgrade",
    CLUSTER_PRICE: "Price",
    CLUSTER_DRLC: "Demand Response and Load Control",
    CLUSTER_METERING: "Metering",
    CLUSTER_MESSAGING: "Messaging",
    CLUSTER_TUNNELING: "Tunneling",
    CLUSTER_PREPAYMENT: "Prepayment",
    CLUSTER_ENERGY_MANAGEMENT: "Energy Management",
    CLUSTER_CALENDAR: "Calendar",
    CLUSTER_DEVICE_MANAGEMENT: "Device Management",
    CLUSTER_EVENTS: "Events",
    CLUSTER_MDU_PAIRING: "MDU Pairing",
    CLUSTER_SUB_GHZ: "Sub-GHz",
    CLUSTER_KEY_ESTABLISHMENT: "Key Establishment",
}

# ---------------------------------------------------------------------------
# Profile-wide ("general") commands
# ---------------------------------------------------------------------------

CMD_READ_ATTRIBUTES: Final = 0x00
CMD_READ_ATTRIBUTES_RESPONSE: Final = 0x01
CMD_WRITE_ATTRIBUTES: Final = 0x02
CMD_WRITE_ATTRIBUTES_UNDIVIDED: Final = 0x03
CMD_WRITE_ATTRIBUTES_RESPONSE: Final = 0x04
CMD_WRITE_ATTRIBUTES_NO_RESPONSE: Final = 0x05
CMD_CONFIGURE_REPORTING: Final = 0x06
CMD_CONFIGURE_REPORTING_RESPONSE: Final = 0x07
CMD_READ_REPORTING_CONFIGURATION: Final = 0x08
CMD_READ_REPORTING_CONFIGURATION_RESPONSE: Final = 0x09
CMD_REPORT_ATTRIBUTES: Final = 0x0A
CMD_DEFAULT_RESPONSE: Final = 0x0B
CMD_DISCOVER_ATTRIBUTES: Final = 0x0C
CMD_DISCOVER_ATTRIBUTES_RESPONSE: Final = 0x0D

GENERAL_COMMANDS: Final[dict[int, str]] = {
    CMD_READ_ATTRIBUTES: "Read Attributes",
    CMD_READ_ATTRIBUTES_RESPONSE: "Read Attributes Response",
    CMD_WRITE_ATTRIBUTES: "Write Attributes",
    CMD_WRITE_ATTRIBUTES_UNDIVIDED: "Write Attributes Undivided",
    CMD_WRITE_ATTRIBUTES_RESPONSE: "Write Attributes Response",
    CMD_WRITE_ATTRIBUTES_NO_RESPONSE: "Write Attributes No Response",
    CMD_CONFIGURE_REPORTING: "Configure Reporting",
    CMD_CONFIGURE_REPORTING_RESPONSE: "Configure Reporting Response",
    CMD_READ_REPORTING_CONFIGURATION: "Read Reporting Configuration",
    CMD_READ_REPORTING_CONFIGURATION_RESPONSE: "Read Reporting Configuration Response",
    CMD_REPORT_ATTRIBUTES: "Report Attributes",
    CMD_DEFAULT_RESPONSE: "Default Response",
    CMD_DISCOVER_ATTRIBUTES: "Discover Attributes",
    CMD_DISCOVER_ATTRIBUTES_RESPONSE: "Discover Attributes Response",
    0x0E: "Read Attributes Structured",
    0x0F: "Write Attributes Structured",
    0x10: "Write Attributes Structured Response",
    0x11: "Discover Commands Received",
    0x12: "Discover Commands Received Response",
    0x13: "Discover Commands Generated",
    0x14: "Discover Commands Generated Response",
    0x15: "Discover Attributes Extended",
    0x16: "Discover Attributes Extended Response",
}

# ---------------------------------------------------------------------------
# Cluster-specific commands: CLUSTER_COMMANDS[(cluster, direction, command id)]
# direction 0 = client to server (received by the server), 1 = server to client.
# ---------------------------------------------------------------------------

_CLUSTER_COMMAND_TABLE: Final[dict[int, tuple[dict[int, str], dict[int, str]]]] = {
    CLUSTER_BASIC: ({0x00: "Reset to Factory Defaults"}, {}),
    CLUSTER_IDENTIFY: (
        {0x00: "Identify", 0x01: "Identify Query"},
        {0x00: "Identify Query Response"},
    ),
    CLUSTER_OTA: (
        {
            0x01: "Query Next Image Request",
            0x03: "Image Block Request",
            0x04: "Image Page Request",
            0x06: "Upgrade End Request",
            0x08: "Query Device Specific File Request",
        },
        {
            0x00: "Image Notify",
            0x02: "Query Next Image Response",
            0x05: "Image Block Response",
            0x07: "Upgrade End Response",
            0x09: "Query Device Specific File Response",
        },
    ),
    CLUSTER_PRICE: (
        {
            0x00: "Get Current Price",
            0x01: "Get Scheduled Prices",
            0x02: "Price Acknowledgement",
            0x03: "Get Block Period(s)",
            0x04: "Get Conversion Factor",
            0x05: "Get Calorific Value",
            0x06: "Get Tariff Information",
            0x07: "Get Price Matrix",
            0x08: "Get Block Thresholds",
            0x09: "Get CO2 Value",
            0x0A: "Get Tier Labels",
            0x0B: "Get Billing Period",
            0x0C: "Get Consolidated Bill",
            0x0D: "CPP Event Response",
            0x0E: "Get Credit Payment",
            0x0F: "Get Currency Conversion",
            0x10: "Get Tariff Cancellation",
        },
        {
            0x00: "Publish Price",
            0x01: "Publish Block Period",
            0x02: "Publish Conversion Factor",
            0x03: "Publish Calorific Value",
            0x04: "Publish Tariff Information",
            0x05: "Publish Price Matrix",
            0x06: "Publish Block Thresholds",
            0x07: "Publish CO2 Value",
            0x08: "Publish Tier Labels",
            0x09: "Publish Billing Period",
            0x0A: "Publish Consolidated Bill",
            0x0B: "Publish CPP Event",
            0x0C: "Publish Credit Payment",
            0x0D: "Publish Currency Conversion",
            0x0E: "Cancel Tariff",
        },
    ),
    CLUSTER_DRLC: (
        {0x00: "Report Event Status", 0x01: "Get Scheduled Events"},
        {
            0x00: "Load Control Event",
            0x01: "Cancel Load Control Event",
            0x02: "Cancel All Load Control Events",
        },
    ),
    CLUSTER_METERING: (
        {
            0x00: "Get Profile",
            0x01: "Request Mirror Response",
            0x02: "Mirror Removed",
            0x03: "Request Fast Poll Mode",
            0x04: "Schedule Snapshot",
            0x05: "Take Snapshot",
            0x06: "Get Snapshot",
            0x07: "Start Sampling",
            0x08: "Get Sampled Data",
            0x09: "Mirror Report Attribute Response",
            0x0A: "Reset Load Limit Counter",
            0x0B: "Change Supply",
            0x0C: "Local Change Supply",
            0x0D: "Set Supply Status",
            0x0E: "Set Uncontrolled Flow Threshold",
        },
        {
            0x00: "Get Profile Response",
            0x01: "Request Mirror",
            0x02: "Remove Mirror",
            0x03: "Request Fast Poll Mode Response",
            0x04: "Schedule Snapshot Response",
            0x05: "Take Snapshot Response",
            0x06: "Publish Snapshot",
            0x07: "Get Sampled Data Response",
            0x08: "Configure Mirror",
            0x09: "Configure Notification Scheme",
            0x0A: "Configure Notification Flags",
            0x0B: "Get Notified Message",
            0x0C: "Supply Status Response",
            0x0D: "Start Sampling Response",
        },
    ),
    CLUSTER_MESSAGING: (
        {0x00: "Get Last Message", 0x01: "Message Confirmation", 0x02: "Get Message Cancellation"},
        {
            0x00: "Display Message",
            0x01: "Cancel Message",
            0x02: "Display Protected Message",
            0x03: "Cancel All Messages",
        },
    ),
    CLUSTER_TUNNELING: (
        {
            0x00: "Request Tunnel",
            0x01: "Close Tunnel",
            0x02: "Transfer Data",
            0x03: "Transfer Data Error",
            0x04: "Ack Transfer Data",
            0x05: "Ready Data",
            0x06: "Get Supported Tunnel Protocols",
        },
        {
            0x00: "Request Tunnel Response",
            0x01: "Transfer Data",
            0x02: "Transfer Data Error",
            0x03: "Ack Transfer Data",
            0x04: "Ready Data",
            0x05: "Supported Tunnel Protocols Response",
            0x06: "Tunnel Closure Notification",
        },
    ),
    CLUSTER_PREPAYMENT: (
        {
            0x00: "Select Available Emergency Credit",
            0x02: "Change Debt",
            0x03: "Emergency Credit Setup",
            0x04: "Consumer Top Up",
            0x05: "Credit Adjustment",
            0x06: "Change Payment Mode",
            0x07: "Get Prepay Snapshot",
            0x08: "Get Top Up Log",
            0x09: "Set Low Credit Warning Level",
            0x0A: "Get Debt Repayment Log",
            0x0B: "Set Maximum Credit Limit",
            0x0C: "Set Overall Debt Cap",
        },
        {
            0x01: "Publish Prepay Snapshot",
            0x02: "Change Payment Mode Response",
            0x03: "Consumer Top Up Response",
            0x05: "Publish Top Up Log",
            0x06: "Publish Debt Log",
        },
    ),
    CLUSTER_CALENDAR: (
        {
            0x00: "Get Calendar",
            0x01: "Get Day Profiles",
            0x02: "Get Week Profiles",
            0x03: "Get Seasons",
            0x04: "Get Special Days",
            0x05: "Get Calendar Cancellation",
        },
        {
            0x00: "Publish Calendar",
            0x01: "Publish Day Profile",
            0x02: "Publish Week Profile",
            0x03: "Publish Seasons",
            0x04: "Publish Special Days",
            0x05: "Cancel Calendar",
        },
    ),
    CLUSTER_DEVICE_MANAGEMENT: (
        {
            0x00: "Get Change of Tenancy",
            0x01: "Get Change of Supplier",
            0x02: "Request New Password",
            0x03: "Get Site ID",
            0x04: "Report Event Configuration",
            0x05: "Get CIN",
        },
        {
            0x00: "Publish Change of Tenancy",
            0x01: "Publish Change of Supplier",
            0x02: "Request New Password Response",
            0x03: "Update Site ID",
            0x04: "Set Event Configuration",
            0x05: "Get Event Configuration",
            0x06: "Update CIN",
        },
    ),
    CLUSTER_EVENTS: (
        {0x00: "Get Event Log", 0x01: "Clear Event Log Request"},
        {0x00: "Publish Event", 0x01: "Publish Event Log", 0x02: "Clear Event Log Response"},
    ),
    CLUSTER_KEY_ESTABLISHMENT: (
        {
            0x00: "Initiate Key Establishment Request",
            0x01: "Ephemeral Data Request",
            0x02: "Confirm Key Data Request",
            0x03: "Terminate Key Establishment",
        },
        {
            0x00: "Initiate Key Establishment Response",
            0x01: "Ephemeral Data Response",
            0x02: "Confirm Key Data Response",
            0x03: "Terminate Key Establishment",
        },
    ),
}

CLUSTER_COMMANDS: Final[dict[tuple[int, int, int], str]] = {
    (cluster, direction, cmd): name
    for cluster, tables in _CLUSTER_COMMAND_TABLE.items()
    for direction, table in enumerate(tables)
    for cmd, name in table.items()
}

# ---------------------------------------------------------------------------
# Attributes: ATTRIBUTES[(cluster, attribute id)]
# ---------------------------------------------------------------------------

_ATTRIBUTE_TABLE: Final[dict[int, dict[int, str]]] = {
    CLUSTER_BASIC: {
        0x0000: "ZCL Version",
        0x0001: "Application Version",
        0x0002: "Stack Version",
        0x0003: "HW Version",
        0x0004: "Manufacturer Name",
        0x0005: "Model Identifier",
        0x0006: "Date Code",
        0x0007: "Power Source",
        0x4000: "SW Build ID",
    },
    CLUSTER_TIME: {
        0x0000: "Time",
        0x0001: "Time Status",
        0x0002: "Time Zone",
        0x0003: "DST Start",
        0x0004: "DST End",
        0x0005: "DST Shift",
        0x0006: "Standard Time",
        0x0007: "Local Time",
        0x0008: "Last Set Time",
        0x0009: "Valid Until Time",
    },
    CLUSTER_PRICE: {
        0x0100: "Block 1 Threshold",
        0x0101: "Block 2 Threshold",
        0x0102: "Block 3 Threshold",
        0x0202: "Threshold Multiplier",
        0x0203: "Threshold Divisor",
        0x0301: "Standing Charge",
        0x0302: "Conversion Factor",
        0x0303: "Conversion Factor Trailing Digit",
        0x0304: "Calorific Value",
        0x0305: "Calorific Value Unit",
        0x0306: "Calorific Value Trailing Digit",
        0x0400: "No Tier Block 1 Price",
        0x0401: "No Tier Block 2 Price",
        0x0402: "No Tier Block 3 Price",
        0x0403: "No Tier Block 4 Price",
        0x0410: "Tier 1 Block 1 Price",
        0x0420: "Tier 2 Block 1 Price",
        0x0430: "Tier 3 Block 1 Price",
        0x0440: "Tier 4 Block 1 Price",
        0x0615: "Unit of Measure",
        0x0616: "Currency",
        0x0617: "Price Trailing Digit",
    },
    CLUSTER_METERING: {
        0x0000: "Current Summation Delivered",
        0x0014: "Supply Status",
        0x0100: "Current Tier 1 Summation Delivered",
        0x0102: "Current Tier 2 Summation Delivered",
        0x0104: "Current Tier 3 Summation Delivered",
        0x0106: "Current Tier 4 Summation Delivered",
        0x0205: "Remaining Battery Life in Days",
        0x0206: "Current Meter ID",
        0x0300: "Unit of Measure",
        0x0301: "Multiplier",
        0x0302: "Divisor",
        0x0307: "Site ID",
        0x0607: "Supply Tamper State",
        0x0608: "Supply Depletion State",
        0x0700: "Current No Tier Block 1 Summation Delivered",
        0x0701: "Current No Tier Block 2 Summation Delivered",
        0x0702: "Current No Tier Block 3 Summation Delivered",
        0x0703: "Current No Tier Block 4 Summation Delivered",
        0x0A00: "Bill to Date Delivered",
        0x0B10: "Uncontrolled Flow Threshold",
        0x0B11: "Uncontrolled Flow Threshold Unit of Measure",
        0x0B12: "Uncontrolled Flow Multiplier",
        0x0B13: "Uncontrolled Flow Divisor",
        0x0B14: "Flow Stabilisation Period",
        0x0B15: "Flow Measurement Period",
    },
    CLUSTER_PREPAYMENT: {
        0x0000: "Payment Control Configuration",
        0x0001: "Credit Remaining",
        0x0002: "Emergency Credit Remaining",
        0x0005: "Accumulated Debt",
        0x0006: "Overall Debt Cap",
        0x0010: "Emergency Credit Limit/Allowance",
        0x0011: "Emergency Credit Threshold",
        0x0021: "Max Credit Limit",
        0x0022: "Max Credit Per Top Up",
        0x0031: "Low Credit Warning Level",
        0x0040: "Cut Off Value",
        0x0211: "Debt Amount #1",
        0x0216: "Debt Recovery Frequency #1",
        0x0217: "Debt Recovery Amount #1",
        0x0221: "Debt Amount #2",
        0x0226: "Debt Recovery Frequency #2",
        0x0227: "Debt Recovery Amount #2",
        0x0231: "Debt Amount #3",
        0x0239: "Debt Recovery Top Up Percentage #3",
    },
}

ATTRIBUTES: Final[dict[tuple[int, int], str]] = {
    (cluster, attr): name
    for cluster, table in _ATTRIBUTE_TABLE.items()
    for attr, name in table.items()
}

# ---------------------------------------------------------------------------
# ZCL status codes
# ---------------------------------------------------------------------------

ZCL_STATUS_SUCCESS: Final = 0x00

ZCL_STATUS: Final[dict[int, str]] = {
    0x00: "SUCCESS",
    0x01: "FAILURE",
    0x7E: "NOT_AUTHORIZED",
    0x7F: "RESERVED_FIELD_NOT_ZERO",
    0x80: "MALFORMED_COMMAND",
    0x81: "UNSUP_CLUSTER_COMMAND",
    0x82: "UNSUP_GENERAL_COMMAND",
    0x83: "UNSUP_MANUF_CLUSTER_COMMAND",
    0x84: "UNSUP_MANUF_GENERAL_COMMAND",
    0x85: "INVALID_FIELD",
    0x86: "UNSUPPORTED_ATTRIBUTE",
    0x87: "INVALID_VALUE",
    0x88: "READ_ONLY",
    0x89: "INSUFFICIENT_SPACE",
    0x8A: "DUPLICATE_EXISTS",
    0x8B: "NOT_FOUND",
    0x8C: "UNREPORTABLE_ATTRIBUTE",
    0x8D: "INVALID_DATA_TYPE",
    0x8E: "INVALID_SELECTOR",
    0x8F: "WRITE_ONLY",
    0x90: "INCONSISTENT_STARTUP_STATE",
    0x91: "DEFINED_OUT_OF_BAND",
    0x92: "INCONSISTENT",
    0x93: "ACTION_DENIED",
    0x94: "TIMEOUT",
    0x95: "ABORT",
    0x96: "INVALID_IMAGE",
    0x97: "WAIT_FOR_DATA",
    0x98: "NO_IMAGE_AVAILABLE",
    0x99: "REQUIRE_MORE_IMAGE",
    0x9A: "NOTIFICATION_PENDING",
    0xC0: "HARDWARE_FAILURE",
    0xC1: "SOFTWARE_FAILURE",
    0xC2: "CALIBRATION_ERROR",
    0xC3: "UNSUPPORTED_CLUSTER",
}

# ---------------------------------------------------------------------------
# ZCL data types
# ---------------------------------------------------------------------------

#: How a data type's value is laid out on the wire (all little-endian).
KIND_NONE: Final = "none"  # no value bytes
KIND_UINT: Final = "uint"  # fixed-size unsigned integer (also data, bitmap, enum, UTC, ids, floats)
KIND_INT: Final = "int"  # fixed-size two's-complement integer
KIND_BOOL: Final = "bool"  # 1 byte: 0 false, 1 true, 0xFF invalid
KIND_FIXED_BYTES: Final = "fixed-bytes"  # fixed-size opaque bytes (time of day, date, key)
KIND_STRING: Final = "string"  # 1-byte length (0xFF = invalid) + bytes
KIND_LONG_STRING: Final = "long-string"  # 2-byte length (0xFFFF = invalid) + bytes
KIND_ARRAY: Final = "array"  # element type(1) + count(2, 0xFFFF = invalid) + elements
KIND_STRUCT: Final = "struct"  # count(2, 0xFFFF = invalid) + (type(1) + value)*


@dataclass(frozen=True, slots=True)
class ZclType:
    """A ZCL data type: its name, value size in bytes (0 when variable) and layout kind."""

    name: str
    size: int
    kind: str
    analog: bool = False  # analog types carry a reportable-change field in reporting records


ZCL_TYPE_OCTET_STRING: Final = 0x41
ZCL_TYPE_CHAR_STRING: Final = 0x42
ZCL_TYPE_LONG_OCTET_STRING: Final = 0x43
ZCL_TYPE_LONG_CHAR_STRING: Final = 0x44
ZCL_TYPE_UTC_TIME: Final = 0xE2
ZCL_TYPE_BOOL: Final = 0x10
#: Types whose value is text (shown decoded in JSON; kept as bytes for exact re-encoding).
ZCL_TEXT_TYPES: Final = frozenset({ZCL_TYPE_CHAR_STRING, ZCL_TYPE_LONG_CHAR_STRING})
#: IEEE-754 types: kept as their bit pattern (exact round trip, NaN payloads included).
ZCL_FLOAT_TYPES: Final[dict[int, str]] = {0x38: "<e", 0x39: "<f", 0x3A: "<d"}
#: Invalid-value markers of the length/count prefixed kinds.
ZCL_INVALID_STRING_LEN: Final = 0xFF
ZCL_INVALID_LONG_LEN: Final = 0xFFFF
ZCL_BOOL_INVALID: Final = 0xFF


def _build_types() -> dict[int, ZclType]:
    t: dict[int, ZclType] = {0x00: ZclType("nodata", 0, KIND_NONE)}
    for n in range(1, 9):
        t[0x07 + n] = ZclType(f"data{8 * n}", n, KIND_UINT)
        t[0x17 + n] = ZclType(f"map{8 * n}", n, KIND_UINT)
        t[0x1F + n] = ZclType(f"uint{8 * n}", n, KIND_UINT, analog=True)
        t[0x27 + n] = ZclType(f"int{8 * n}", n, KIND_INT, analog=True)
    t[ZCL_TYPE_BOOL] = ZclType("bool", 1, KIND_BOOL)
    t[0x30] = ZclType("enum8", 1, KIND_UINT)
    t[0x31] = ZclType("enum16", 2, KIND_UINT)
    t[0x38] = ZclType("semi", 2, KIND_UINT, analog=True)
    t[0x39] = ZclType("single", 4, KIND_UINT, analog=True)
    t[0x3A] = ZclType("double", 8, KIND_UINT, analog=True)
    t[ZCL_TYPE_OCTET_STRING] = ZclType("octstr", 0, KIND_STRING)
    t[ZCL_TYPE_CHAR_STRING] = ZclType("string", 0, KIND_STRING)
    t[ZCL_TYPE_LONG_OCTET_STRING] = ZclType("octstr16", 0, KIND_LONG_STRING)
    t[ZCL_TYPE_LONG_CHAR_STRING] = ZclType("string16", 0, KIND_LONG_STRING)
    t[0x48] = ZclType("array", 0, KIND_ARRAY)
    t[0x4C] = ZclType("struct", 0, KIND_STRUCT)
    t[0x50] = ZclType("set", 0, KIND_ARRAY)
    t[0x51] = ZclType("bag", 0, KIND_ARRAY)
    t[0xE0] = ZclType("ToD", 4, KIND_FIXED_BYTES, analog=True)
    t[0xE1] = ZclType("date", 4, KIND_FIXED_BYTES, analog=True)
    t[ZCL_TYPE_UTC_TIME] = ZclType("UTC", 4, KIND_UINT, analog=True)
    t[0xE8] = ZclType("clusterId", 2, KIND_UINT)
    t[0xE9] = ZclType("attribId", 2, KIND_UINT)
    t[0xEA] = ZclType("bacOID", 4, KIND_UINT)
    t[0xF0] = ZclType("EUI64", 8, KIND_UINT)
    t[0xF1] = ZclType("key128", 16, KIND_FIXED_BYTES)
    t[0xFF] = ZclType("unk", 0, KIND_NONE)
    return t


ZCL_TYPES: Final[dict[int, ZclType]] = _build_types()


def cluster_name(cluster_id: int) -> str | None:
    return CLUSTERS.get(cluster_id)


def command_name(
    cluster_id: int, frame_type: int, server_to_client: bool, command_id: int
) -> str | None:
    """Name of a command: general commands by id, cluster-specific ones by cluster and direction."""
    if frame_type == ZCL_FRAME_TYPE_GLOBAL:
        return GENERAL_COMMANDS.get(command_id)
    if frame_type == ZCL_FRAME_TYPE_CLUSTER:
        return CLUSTER_COMMANDS.get((cluster_id, int(server_to_client), command_id))
    return None


def attribute_name(cluster_id: int, attribute_id: int) -> str | None:
    return ATTRIBUTES.get((cluster_id, attribute_id))
