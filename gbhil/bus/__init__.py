"""The MQTT bus: a rig's devices, hub and DCC side in several processes or machines.

The embedded default rig needs none of this (architecture rule 7: in-process
bus, simulated medium, stepped clock). A rig file switches the bus on when
the rig spans processes or machines; then:

* :mod:`gbhil.bus.topics` — the topic scheme (``gbhil/<rig>/<run>/...``) as a
  catalogue with QoS and retain flags, and the JSON payload envelope.
* :mod:`gbhil.bus.mqtt` — :class:`MqttBus`, an aiomqtt client with a persistent
  session, a resending outbox and de-duplication; :class:`BusRpc`;
  :class:`MosquittoBroker` for tests and single-machine rigs.
* :mod:`gbhil.bus.han_bridge` — APS frames, joining and node control across
  processes (:class:`MqttHanTransport`, :class:`MediumGateway`) and the shared
  real-time clock.
* :mod:`gbhil.bus.wan_bridge` — hub WAN traffic and power events to a DCC side.
* :mod:`gbhil.bus.device_host` — the default rig split over processes, and
  ``python -m gbhil.bus.device_host``.

See docs/mqtt.md.
"""

from gbhil.bus.han_bridge import (
    MediumGateway,
    MqttHan,
    MqttHanTransport,
    RemoteNode,
    SharedRealTimeClock,
)
from gbhil.bus.mqtt import (
    BrokerAddress,
    BusClosedError,
    BusConnectError,
    BusError,
    BusMessage,
    BusOverflowError,
    BusRpc,
    BusTimeoutError,
    MosquittoBroker,
    MqttBus,
    ReconnectPolicy,
    RpcError,
)
from gbhil.bus.topics import (
    CATALOGUE,
    Envelope,
    PayloadError,
    Qos,
    RunTopics,
    TopicError,
    TopicKind,
)
from gbhil.bus.wan_bridge import DccWanClient, HubWanBridge

__all__ = [
    "CATALOGUE",
    "BrokerAddress",
    "BusClosedError",
    "BusConnectError",
    "BusError",
    "BusMessage",
    "BusOverflowError",
    "BusRpc",
    "BusTimeoutError",
    "DccWanClient",
    "Envelope",
    "HubWanBridge",
    "MediumGateway",
    "MosquittoBroker",
    "MqttBus",
    "MqttHan",
    "MqttHanTransport",
    "PayloadError",
    "Qos",
    "ReconnectPolicy",
    "RemoteNode",
    "RpcError",
    "RunTopics",
    "SharedRealTimeClock",
    "TopicError",
    "TopicKind",
]
