"""``edgeav run --mqtt``: predictions published to a real ``mosquitto`` broker (Debian package
``mosquitto``, started here on 127.0.0.1 on a free port with its own configuration) and read by a
real paho-mqtt subscriber: availability with its last will, events, Home Assistant discovery,
states; the broker stopped and started mid-run while the ticks go on. Skipped, with the reason,
where mosquitto is not installed (the Makefile's deb-test installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import media
import pytest

from edgeav.errors import EdgeAVError
from edgeav.runtime.mqtt import MqttPublisher, MqttTarget, parse_mqtt_url
from edgeav.runtime.pipeline import Prediction

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A private mosquitto on 127.0.0.1:``port`` (no persistence: a restart forgets retained
    messages, as a broker that lost its disk would)."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {folder / 'mosquitto.log'}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture()
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package mosquitto)")
    b = Broker(tmp_path).start()
    yield b
    b.stop()


class Subscriber:
    """A real paho client subscribed to everything (re-subscribing after a reconnect); each
    message kept as ``(monotonic time, topic, payload, retain)``."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[float, str, str, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber")
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((time.monotonic(), msg.topic, msg.payload.decode(), msg.retain))

    def since(self, t: float = 0.0, topic: str | None = None) -> list[tuple[str, str]]:
        with self._lock:
            return [(tp, p) for w, tp, p, _ in self.messages if w >= t and topic in (None, tp)]

    def wait_for(self, pred, timeout: float = 15.0, t: float = 0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.since(t) if pred(*m)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no such message in {timeout} s; got {self.since(t)[-20:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def subscriber(broker):
    s = Subscriber(broker.port)
    yield s
    s.close()


def test_mqtt_urls():
    t = parse_mqtt_url("mqtt://ha:s%3Acret@broker.lan:1884/home/pi-cam", hostname="x")
    assert t == MqttTarget("broker.lan", 1884, "ha", "s:cret", "home/pi-cam")
    assert "s:cret" not in str(t)
    assert parse_mqtt_url("mqtt://10.0.0.2", hostname="pi 4") == MqttTarget(
        "10.0.0.2", 1883, None, None, "edgeav/pi_4"
    )
    for bad in ("http://broker", "mqtt://", "mqtt://b:99999", "mqtt://b/a/+", "broker:1883"):
        with pytest.raises(EdgeAVError, match="--mqtt"):
            parse_mqtt_url(bad)


def _prediction(tick: int, label: str | None, classes=media.CLASSES) -> Prediction:
    probs = [0.1] * len(classes)
    if label is not None:
        probs[classes.index(label)] = 0.8
    return Prediction(
        tick, tick / 4, label, 0.8 if label else 0.4, None if label else "uncertain", [],
        {"image": probs, "audio": None, "fused": probs}, ["image"], ["image"] if label else [],
        {"audio": "silent"} if label else {"audio": "silent", "image": "unsure"}, None, None,
    )  # fmt: skip


def test_publisher_states_events_and_a_broker_restart(broker, subscriber, tmp_path):
    """The publisher on its own, fed records: states follow the labels, each change is one
    event, offering never waits while the broker is down, and a restarted broker gets the
    availability and every state again."""
    pub = MqttPublisher(
        MqttTarget("127.0.0.1", broker.port, prefix="t/cam"), media.CLASSES, ["image", "audio"]
    ).start()
    subscriber.wait_for(lambda tp, p: tp == "t/cam/availability" and p == "online")
    for k, label in enumerate(["dark", "dark", None, "bright", "mid"]):
        pub.offer(_prediction(k, label))
    subscriber.wait_for(lambda tp, p: tp == "t/cam/label" and p == "mid")
    events = [json.loads(p) for _, p in subscriber.since(topic="t/cam/event")]
    assert [e["label"] for e in events] == ["dark", "bright", "mid"]
    assert events[0]["modalities"] == {
        "image": {"state": "used", "label": "dark", "confidence": 0.8},
        "audio": {"state": "silent"},
    }
    assert events[0]["tick"] == 0 and events[0]["time"].endswith("+00:00")
    states = [(tp, p) for tp, p in subscriber.since() if tp.endswith("/state")]
    assert states[-4:] == [
        ("t/cam/dark/state", "OFF"),
        ("t/cam/bright/state", "ON"),
        ("t/cam/bright/state", "OFF"),
        ("t/cam/mid/state", "ON"),
    ]

    broker.stop()
    slowest = 0.0
    for k in range(5, 205):
        t = time.perf_counter()
        pub.offer(_prediction(k, media.CLASSES[k % 3]))
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 0.01, f"offer took {slowest * 1e3:.1f} ms with the broker down"
    restarted = time.monotonic()
    broker.start()
    subscriber.wait_for(
        lambda tp, p: tp == "t/cam/availability" and p == "online", t=restarted, timeout=20
    )
    # the states after the outage: the newest label (tick 204: class 0) ON, the others OFF
    last = media.CLASSES[204 % 3]
    for c in media.CLASSES:
        subscriber.wait_for(
            lambda tp, p, c=c: tp == f"t/cam/{c}/state" and p == ("ON" if c == last else "OFF"),
            t=restarted,
        )
    pub.offer(_prediction(205, "mid" if last != "mid" else "dark"))
    subscriber.wait_for(lambda tp, p: tp == "t/cam/event" and '"tick": 205' in p, t=restarted)
    pub.stop()
    subscriber.wait_for(lambda tp, p: tp == "t/cam/availability" and p == "offline")


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
def test_the_last_will_says_offline_when_the_run_dies(broker, subscriber, tmp_path):
    """A run killed outright (no clean exit): the broker publishes its will, ``offline``."""
    code = (
        "import sys, time\n"
        "from edgeav.runtime.mqtt import MqttPublisher, MqttTarget\n"
        f"p = MqttPublisher(MqttTarget('127.0.0.1', {broker.port}, prefix='t/will'), ['a', 'b'], ['image']).start()\n"
        "while not p._connected.is_set(): time.sleep(0.01)\n"
        "print('up', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        subscriber.wait_for(lambda tp, p: tp == "t/will/availability" and p == "online")
        proc.kill()
        proc.wait(timeout=10)
        subscriber.wait_for(lambda tp, p: tp == "t/will/availability" and p == "offline")
    finally:
        proc.kill()


def test_run_publishes_and_outlives_a_broker_restart(av_bundle, broker, subscriber, tmp_path):
    """`edgeav run --mqtt --mqtt-discovery` on tests/media.py's stream, looped, in real time,
    started before the broker is there: online, discovery configs, an event per label change,
    states; the broker stopped for 3 s (the ticks keep coming) and started again (published
    again); Ctrl-C: offline."""
    video, wav = media.write_stream(tmp_path, media.SEQUENCE)
    broker.stop()
    url = f"mqtt://127.0.0.1:{broker.port}/test/pi"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeav", "run", "-m", str(av_bundle), "--camera", str(video),
         "--audio-file", str(wav), "--loop", "--rate", "4", "--json", "--mqtt", url,
         "--mqtt-discovery"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ticks: list[tuple[float, int]] = []
    summary: list[dict] = []

    def read() -> None:
        for line in proc.stdout:
            record = json.loads(line)
            if "summary" in record:
                summary.append(record["summary"])
            else:
                ticks.append((time.monotonic(), record["tick"]))

    lines: list[str] = []  # stderr's
    unreachable = threading.Event()

    def read_errors() -> None:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "mqtt: cannot reach" in line:
                unreachable.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    error_reader = threading.Thread(target=read_errors, daemon=True)
    error_reader.start()
    try:
        # the broker starts once the run has tried it and said so, however slow its start-up
        assert unreachable.wait(timeout=60), lines
        assert proc.poll() is None
        broker.start()
        subscriber.wait_for(lambda tp, p: tp == "test/pi/availability" and p == "online")
        configs = subscriber.wait_for(
            lambda tp, p: tp.startswith("homeassistant/binary_sensor/") and tp.endswith("/config")
        )
        subscriber.wait_for(lambda tp, p: tp == "homeassistant/sensor/edgeav_test_pi/label/config")
        # the stream shows dark, mid, bright, bright, dark, mid, dark, bright: five changes
        subscriber.wait_for(
            lambda *_: len(subscriber.since(topic="test/pi/event")) >= 5, timeout=20
        )
        configs = {
            tp: json.loads(p) for tp, p in subscriber.since() if tp.startswith("homeassistant/")
        }
        assert len(configs) == 4
        dark = configs["homeassistant/binary_sensor/edgeav_test_pi/dark/config"]
        assert dark["state_topic"] == "test/pi/dark/state"
        assert dark["availability_topic"] == "test/pi/availability"
        events = [json.loads(p) for _, p in subscriber.since(topic="test/pi/event")]
        assert {e["label"] for e in events} == set(media.CLASSES)
        assert all(a["label"] != b["label"] for a, b in zip(events, events[1:], strict=False))
        assert set(events[0]["modalities"]) == {"image", "audio"}
        assert all(events[0]["modalities"][m]["state"] == "used" for m in ("image", "audio"))
        assert {p for tp, p in subscriber.since() if tp == "test/pi/mid/state"} == {"ON", "OFF"}

        broker.stop()
        down = time.monotonic()
        time.sleep(3.0)
        during = [k for w, k in ticks if w > down]
        assert len(during) >= 8, f"{len(during)} ticks in 3 s with the broker down"
        assert proc.poll() is None
        restarted = time.monotonic()
        broker.start()
        subscriber.wait_for(
            lambda tp, p: tp == "test/pi/availability" and p == "online", t=restarted, timeout=30
        )
        subscriber.wait_for(lambda tp, p: tp == "test/pi/event", t=restarted, timeout=15)
        subscriber.wait_for(lambda tp, p: tp.startswith("homeassistant/"), t=restarted)
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
        code = proc.wait(timeout=30)
        reader.join(timeout=10)
        error_reader.join(timeout=10)
    assert code == 130, lines
    subscriber.wait_for(lambda tp, p: tp == "test/pi/availability" and p == "offline")
    assert all(line.startswith("edgeav: ") for line in lines), lines
    assert sum("mqtt: cannot reach" in line for line in lines) == 1, lines
    assert any("mqtt: lost" in line for line in lines), lines
    assert summary and summary[0]["mqtt"]["connects"] == 2, summary
