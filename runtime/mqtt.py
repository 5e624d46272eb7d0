"""``edgeav run --mqtt``: the predictions published to an MQTT broker for home automation.

Topics under a prefix (``mqtt://host/PREFIX``; default ``edgeav/<hostname>``):

- ``PREFIX/availability``: ``online`` (retained) while the run is connected; ``offline``
  (retained) when it ends, and as the broker's last will when the run dies or loses the network;
- ``PREFIX/event``: one JSON object for each confident label change (a tick names a label the
  tick before did not): ``label``, ``confidence``, ``modalities`` (each one's state -- ``used``,
  ``absent``, ``stale``, ``silent``, ``unsure`` -- with its own most likely label and
  probability), ``time`` (UTC, ISO 8601), ``t`` (stream seconds) and ``tick``;
- ``PREFIX/<label>/state``: ``ON`` while the ticks name that label, else ``OFF`` (retained; every
  label of the bundle has one);
- ``PREFIX/label``: the last label named (retained).

With ``discovery`` the run also announces itself to Home Assistant (MQTT discovery, retained
configs under ``homeassistant/``): a ``binary_sensor`` per label and a ``sensor`` for the last
label, one device, all with the availability topic.

The tick never waits for the network: :meth:`MqttPublisher.offer` only compares labels and puts
messages on a bounded queue (when it is full the newest are dropped and counted); a thread of
ours hands them to paho-mqtt, whose own network thread (``loop_start``) sends them, and
reconnects to a lost broker in the background with backoff (``reconnect_delay_set``), also
when the broker is not there at start. While the broker is away messages are not kept (events
of that time are lost, counted in ``dropped_offline``); on every (re)connect the availability,
the discovery configs, every label's state and the last label are published again, so the
states are right again at once, also on a broker that restarted without its retained messages.
Messages go out with QoS 1; paho keeps at most :data:`MAX_QUEUED` unacknowledged ones.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from edgeav.errors import EdgeAVError

DEFAULT_PORT = 1883
#: Home Assistant's discovery prefix (its default).
DISCOVERY_PREFIX = "homeassistant"
#: Messages waiting for our publishing thread; beyond this the newest are dropped (counted).
QUEUE_SIZE = 1000
#: QoS 1 messages paho keeps unacknowledged (resent after a reconnect).
MAX_QUEUED = 500
#: Reconnect backoff in seconds: first, doubling up to the last.
RECONNECT_DELAY = (1, 8)
KEEPALIVE = 30
#: Seconds the end of a run waits for ``offline`` to reach the broker (the CLI's signal grace is
#: one second).
STOP_WAIT = 0.5
QOS = 1

_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish: ``mqtt://[user:pass@]host[:port][/prefix]``."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    prefix: str = ""

    def __str__(self) -> str:  # never the password
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}/{self.prefix}"


def topic_word(text: str) -> str:
    """``text`` as one topic level or discovery id: no ``/``, ``+``, ``#`` or spaces."""
    return _TOPIC_UNSAFE.sub("_", text) or "_"


def parse_mqtt_url(url: str, hostname: str | None = None) -> MqttTarget:
    """The :class:`MqttTarget` of a ``--mqtt`` value; the prefix defaults to
    ``edgeav/<hostname>``.

    Raises:
        EdgeAVError: not an ``mqtt://`` URL, no host, a bad port, a prefix with ``+`` or ``#``.
    """
    parts = urlsplit(url.strip())
    if parts.scheme != "mqtt":
        raise EdgeAVError(f"--mqtt {url!r}: expected mqtt://[user:pass@]host[:port][/prefix]")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise EdgeAVError(f"--mqtt {url!r}: the port must be a number 1..65535") from exc
    if not parts.hostname:
        raise EdgeAVError(f"--mqtt {url!r} names no host")
    prefix = parts.path.strip("/")
    if parts.query or parts.fragment or any(c in prefix for c in "+#"):
        raise EdgeAVError(f"--mqtt {url!r}: the prefix must be a plain topic without + # ? or #")
    if not prefix:
        prefix = f"edgeav/{topic_word(hostname or socket.gethostname())}"
    return MqttTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        prefix=prefix,
    )


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
    except ImportError as exc:
        raise EdgeAVError(
            "--mqtt needs paho-mqtt; install the runtime extra: pip install 'edgeav[runtime]'"
        ) from exc
    return mqtt


class MqttPublisher:
    """Publishes a run's predictions (see the module docstring).

    Args:
        target: the broker and prefix.
        classes: the bundle's labels (each gets a state topic).
        modalities: the models the run uses, in order (each event reports every one).
        discovery: also publish Home Assistant discovery configs.
        name: the device's name in Home Assistant (default: the prefix's last level).
        log: called with one-line messages (connected, lost, dropped messages).
    """

    def __init__(
        self,
        target: MqttTarget,
        classes: list[str],
        modalities: list[str],
        *,
        discovery: bool = False,
        name: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.target = target
        self.classes = list(classes)
        self.modalities = list(modalities)
        self.discovery = discovery
        self.node = topic_word(target.prefix.replace("/", "_"))
        self.name = name or target.prefix.rsplit("/", 1)[-1]
        self._log = log or (lambda message: None)
        prefix = target.prefix
        self.availability_topic = f"{prefix}/availability"
        self.event_topic = f"{prefix}/event"
        self.label_topic = f"{prefix}/label"
        self._queue: queue.Queue[tuple[str, str, bool] | None] = queue.Queue(QUEUE_SIZE)
        self._state_lock = threading.Lock()
        self._current: str | None = None  # the label the newest tick named
        self._last: str | None = None  # the last label named by any tick
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._lost_reported = False
        self.dropped = 0
        self.dropped_offline = 0
        self.events = 0
        self.connects = 0

    def state_topic(self, label: str) -> str:
        return f"{self.target.prefix}/{topic_word(label)}/state"

    # --- the tick's side: cheap, never blocks ---------------------------------------------------

    def _put(self, topic: str, payload: str, retain: bool) -> None:
        try:
            self._queue.put_nowait((topic, payload, retain))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                self._log("mqtt: the publishing queue is full; dropping messages")

    def offer(self, prediction: Any) -> None:
        """Queue what ``prediction`` changes: on a new label an event, the states of the old and
        the new label and the last label; when a tick names nothing after a label, its OFF."""
        label = prediction.label
        with self._state_lock:
            previous, self._current = self._current, label
            if label is not None:
                self._last = label
        if label == previous:
            return
        if previous is not None:
            self._put(self.state_topic(previous), "OFF", True)
        if label is not None:
            self.events += 1
            self._put(self.event_topic, json.dumps(self.event(prediction)), False)
            self._put(self.state_topic(label), "ON", True)
            self._put(self.label_topic, label, True)

    def event(self, prediction: Any) -> dict[str, Any]:
        """The event JSON of a prediction that names a label."""
        modalities = {}
        for m in self.modalities:
            state = "used" if m in prediction.used else prediction.flags.get(m, "absent")
            probs = prediction.probs.get(m)
            entry: dict[str, Any] = {"state": state}
            if probs:
                best = max(range(len(probs)), key=probs.__getitem__)
                entry["label"], entry["confidence"] = self.classes[best], round(probs[best], 4)
            modalities[m] = entry
        return {
            "label": prediction.label,
            "confidence": round(prediction.confidence, 4),
            "modalities": modalities,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "t": prediction.t,
            "tick": prediction.tick,
        }

    def publishing(self, predictions: Iterator[Any]) -> Iterator[Any]:
        """``predictions``, each offered for publishing as it passes (as the live server's
        :meth:`~edgeav.runtime.serve.Server.publishing`)."""
        for prediction in predictions:
            self.offer(prediction)
            yield prediction

    # --- the network's side ----------------------------------------------------------------------

    def _discovery_configs(self) -> list[tuple[str, str]]:
        device = {
            "identifiers": [f"edgeav_{self.node}"],
            "name": f"edgeav {self.name}",
            "manufacturer": "edgeav",
            "model": "edgeav run",
        }
        common = {
            "availability_topic": self.availability_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        out = []
        for label in self.classes:
            word = topic_word(label)
            config = {
                "name": label,
                "unique_id": f"edgeav_{self.node}_{word}",
                "state_topic": self.state_topic(label),
                "payload_on": "ON",
                "payload_off": "OFF",
                **common,
            }
            topic = f"{DISCOVERY_PREFIX}/binary_sensor/edgeav_{self.node}/{word}/config"
            out.append((topic, json.dumps(config)))
        sensor = {
            "name": "last label",
            "unique_id": f"edgeav_{self.node}_label",
            "state_topic": self.label_topic,
            "json_attributes_topic": self.event_topic,
            "icon": "mdi:label",
            **common,
        }
        out.append(
            (f"{DISCOVERY_PREFIX}/sensor/edgeav_{self.node}/label/config", json.dumps(sensor))
        )
        return out

    def _announce(self) -> list[tuple[str, str, bool]]:
        """What every (re)connect publishes: availability, discovery, states, the last label."""
        with self._state_lock:
            current, last = self._current, self._last
        messages = [(self.availability_topic, "online", True)]
        if self.discovery:
            messages += [(topic, payload, True) for topic, payload in self._discovery_configs()]
        messages += [
            (self.state_topic(c), "ON" if c == current else "OFF", True) for c in self.classes
        ]
        if last is not None:
            messages.append((self.label_topic, last, True))
        return messages

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._log(f"mqtt: {self.target} refused the connection: {reason_code}")
            return
        self.connects += 1
        self._connected.set()
        self._lost_reported = False
        self._log(f"mqtt: connected to {self.target}")
        for message in self._announce():  # ahead of nothing: published by our thread, in order
            self._put(*message)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._thread is not None and not self._lost_reported:
            self._lost_reported = True
            self._log(f"mqtt: lost {self.target}; reconnecting in the background")

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._lost_reported:
            self._lost_reported = True
            self._log(f"mqtt: cannot reach {self.target}; retrying in the background")

    def start(self) -> MqttPublisher:
        """Start connecting (in the background: a broker that is not there yet is retried)."""
        mqtt = _import_paho()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"edgeav-{self.node}-{int(time.time() * 1000) % 1_000_000}",
        )
        if self.target.username is not None:
            client.username_pw_set(self.target.username, self.target.password)
        client.will_set(self.availability_topic, "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(*RECONNECT_DELAY)
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        try:
            client.connect_async(self.target.host, self.target.port, keepalive=KEEPALIVE)
        except (OSError, ValueError) as exc:
            raise EdgeAVError(f"--mqtt {self.target}: {exc}") from exc
        self._thread = threading.Thread(target=self._publish_loop, name="edgeav-mqtt", daemon=True)
        self._thread.start()
        client.loop_start()
        return self

    def _publish_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if not self._connected.is_set():  # the broker is away: resynced on reconnect
                self.dropped_offline += 1
                continue
            topic, payload, retain = item
            with contextlib.suppress(Exception):  # a full paho queue: dropped, as ours would
                info = self._client.publish(topic, payload, qos=QOS, retain=retain)
                if info.rc == 15:  # MQTT_ERR_QUEUE_SIZE
                    self.dropped += 1

    def stop(self) -> None:
        """Publish what is queued and ``offline`` (retained), then disconnect: within about
        :data:`STOP_WAIT` seconds while connected, at once when the broker is away."""
        client, thread = self._client, self._thread
        if client is None or thread is None:
            return
        self._thread = None  # a disconnect from here on is ours, not a loss
        deadline = time.monotonic() + STOP_WAIT
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=STOP_WAIT)
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._connected.is_set():
            info = client.publish(self.availability_topic, "offline", qos=QOS, retain=True)
            with contextlib.suppress(Exception):
                info.wait_for_publish(timeout=max(0.05, deadline - time.monotonic()))
            client.disconnect()
            client.loop_stop()
        # else: paho's network thread is waiting to reconnect; it is a daemon and ends with us

    def stats(self) -> dict[str, Any]:
        return {
            "broker": str(self.target),
            "connected": self._connected.is_set(),
            "connects": self.connects,
            "events": self.events,
            "dropped": self.dropped,
            "dropped_offline": self.dropped_offline,
        }
