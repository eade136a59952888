"""The client factory against a real Mosquitto: login, TLS with CA, client certificate and insecure."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import resource
import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from loaxa.config import MqttSettings, TlsSettings
from loaxa.mqttclient import Login, Tls, allow_high_descriptors, make_client, poll_select
from loaxa.testing.broker import Broker, free_port, start_mosquitto

WAIT_S = 10.0


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key, issuer: x509.Name | None, issuer_key, *, ca: bool, names: list[x509.GeneralName]):
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, cert, key=None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


def make_ca(directory: Path, name: str, server_names: list[x509.GeneralName]) -> dict[str, Path]:
    """A CA, a server certificate for `server_names` and a client certificate, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert(f"{name} CA", ca_key, None, None, ca=True, names=[])
    server_key, client_key = _key(), _key()
    server = _cert("broker", server_key, ca.subject, ca_key, ca=False, names=server_names)
    client = _cert("station", client_key, ca.subject, ca_key, ca=False, names=[])
    return {
        "ca": _write(directory / "ca.crt", ca),
        "server": _write(directory / "server.crt", server, server_key),
        "server_key": directory / "server.key",
        "client": _write(directory / "client.crt", client, client_key),
        "client_key": directory / "client.key",
    }


def connack(client: mqtt.Client, host: str, port: int) -> int | None:
    """Connect and return the CONNACK reason code (None: the broker hung up first); then disconnect.

    A failed TCP or TLS handshake raises, as paho does.
    """
    answer: list[int] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: object, flags: object, reason: mqtt.ReasonCode, props: object) -> None:
        answer.append(reason.value)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *a: done.set()
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        assert done.wait(WAIT_S), "neither CONNACK nor hang-up"
        return answer[0] if answer else None
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, int, int, dict[str, Path]]]:
    """A broker with a TLS listener (server certificate for 127.0.0.1) and one that also wants a client certificate."""
    tmp = tmp_path_factory.mktemp("tls")
    files = make_ca(tmp / "pki", "province", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    tls_port, mutual_port = free_port(), free_port()
    tls = f"cafile {files['ca']}\ncertfile {files['server']}\nkeyfile {files['server_key']}"
    conf = (
        f"listener {tls_port} 127.0.0.1\n{tls}\n"
        f"listener {mutual_port} 127.0.0.1\n{tls}\nrequire_certificate true\nuse_identity_as_username false"
    )
    broker = start_mosquitto(tmp, conf)
    try:
        yield broker, tls_port, mutual_port, files
    finally:
        broker.stop()


def test_plain_connect_with_station_settings(broker: Broker) -> None:
    client = make_client(MqttSettings(host=broker.host, port=broker.port), "t-plain")
    assert connack(client, broker.host, broker.port) == 0


def test_username_and_password_are_sent(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("hn/xa-a/loa-1:đúng\n", encoding="utf-8")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
    broker = start_mosquitto(tmp_path, f"password_file {passwd}", anonymous=False)
    try:
        good = make_client(Login(username="hn/xa-a/loa-1", password="đúng"), "t-good")
        bad = make_client(Login(username="hn/xa-a/loa-1", password="sai"), "t-bad")
        nobody = make_client(Login(), "t-anon")
        assert connack(good, broker.host, broker.port) == 0
        assert connack(bad, broker.host, broker.port) == 0x87  # not authorised
        assert connack(nobody, broker.host, broker.port) == 0x87
    finally:
        broker.stop()


def test_tls_verifies_the_broker_with_the_given_ca(tls_broker, tmp_path: Path) -> None:
    broker, port, _, files = tls_broker
    settings = MqttSettings(host="127.0.0.1", port=port, tls=TlsSettings(ca_file=files["ca"]))
    assert connack(make_client(settings, "t-tls"), "127.0.0.1", port) == 0
    other = make_ca(tmp_path / "other", "stranger", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    with pytest.raises(ssl.SSLCertVerificationError):
        connack(make_client(Login(tls=Tls(ca_file=other["ca"])), "t-wrong-ca"), "127.0.0.1", port)
    with pytest.raises(OSError):  # with TLS configured, a plain listener is not spoken to in the clear
        connack(make_client(Login(tls=Tls(ca_file=files["ca"])), "t-plain-port"), broker.host, broker.port)


def test_insecure_skips_only_the_host_name_check(tls_broker) -> None:
    _, port, _, files = tls_broker
    # The certificate names 127.0.0.1, so "localhost" does not match it.
    with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname|IP address mismatch|match"):
        connack(make_client(Login(tls=Tls(ca_file=files["ca"])), "t-name"), "localhost", port)
    insecure = make_client(Login(tls=Tls(ca_file=files["ca"], insecure=True)), "t-insecure")
    assert connack(insecure, "localhost", port) == 0


def test_client_certificate_and_key_are_presented(tls_broker) -> None:
    _, _, port, files = tls_broker
    with_cert = Tls(ca_file=files["ca"], cert_file=files["client"], key_file=files["client_key"])
    assert connack(make_client(Login(tls=with_cert), "t-mutual"), "127.0.0.1", port) == 0
    try:
        answer = connack(make_client(Login(tls=Tls(ca_file=files["ca"])), "t-no-cert"), "127.0.0.1", port)
    except OSError:  # TLS 1.2: the handshake fails
        answer = None
    assert answer is None  # TLS 1.3: the handshake completes, then the broker hangs up without a CONNACK


def test_unreadable_tls_files_fail_when_the_client_is_made(tmp_path: Path) -> None:
    with pytest.raises((OSError, ValueError)):
        make_client(Login(tls=Tls(ca_file=tmp_path / "missing.crt")), "t-missing")


# -- many descriptors ------------------------------------------------------------------


@pytest.fixture
def paho_select() -> Iterator[None]:
    saved = mqtt.select  # type: ignore[attr-defined]
    yield
    mqtt.select = saved  # type: ignore[attr-defined]


def test_high_descriptors_change_paho_only_and_paho_still_works(paho_select: None, broker: Broker) -> None:
    real = select.select
    client = make_client(Login(), "t-high", high_descriptors=True)
    assert select.select is real  # nobody else's select changed
    assert mqtt.select.select is poll_select  # type: ignore[attr-defined]
    assert mqtt.select.POLLIN == select.POLLIN  # type: ignore[attr-defined]
    allow_high_descriptors()  # twice is harmless
    assert mqtt.select.select is poll_select  # type: ignore[attr-defined]
    got = threading.Event()
    client.on_message = lambda c, u, msg: got.set()
    client.on_connect = lambda c, u, f, r, p: c.subscribe("t/high", 1)
    client.on_subscribe = lambda c, u, mid, rcs, p: c.publish("t/high", b"x", qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert got.wait(WAIT_S), "no message through paho's poll-based loop"
    finally:
        client.disconnect()
        client.loop_stop()


def test_poll_select_watches_a_descriptor_past_1024() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"hard descriptor limit {hard} < 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    a, b = socket.socketpair()
    high = None
    try:
        fd = os.dup2(a.fileno(), 1500)
        high = socket.socket(fileno=fd)
        with pytest.raises(ValueError):
            select.select([high], [], [], 0)  # what paho would hit
        assert poll_select([high], [], [], 0) == ([], [], [])
        b.send(b"x")
        assert poll_select([high], [high], [], 1.0) == ([high], [high], [])
    finally:
        if high is not None:
            high.close()
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
