"""The configuration: every error named by its key, defaults documented in the example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from loaxa.cli import main
from loaxa.config import Settings, load_config, masked, parse_config
from loaxa.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "loaxa.example.yaml"
STATION = {"province": "hue", "commune": "phu-vang", "id": "loa-1"}


def test_example_config_is_valid_and_documents_every_key():
    settings = load_config(EXAMPLE)
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))

    def keys(model: type, prefix: str = "") -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            inner = getattr(field.annotation, "__args__", (field.annotation,))
            sub = next((a for a in inner if isinstance(a, type) and hasattr(a, "model_fields")), None)
            if sub is not None and name not in ("issuers", "quiet_hours", "tls"):
                found |= keys(sub, f"{prefix}{name}.")
            else:
                found.add(f"{prefix}{name}")
        return found

    def present(data: dict, dotted: str) -> bool:
        node = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = sorted(k for k in keys(Settings) if not present(example, k))
    assert missing == [], f"keys not documented in {EXAMPLE.name}: {missing}"
    assert settings.station.timezone == "Asia/Ho_Chi_Minh"
    assert settings.mqtt.prefix == "loaxa/v1"


def test_every_error_is_reported_at_once_with_its_key():
    raw = {"station": {"province": "x", "comune": "y", "id": "Bad_Id"}, "mqtt": {"port": 99999}, "audio": {"volume": 2}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    text = str(err.value)
    for expected in (
        "station.commune",
        "station.id",
        "station.comune: unknown key (did you mean 'commune'?)",
        "mqtt.port",
        "audio.volume",
    ):
        assert expected in text


def test_unknown_time_zone_and_group_slug_are_named():
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        parse_config({"station": {**STATION, "timezone": "Mars/Olympus"}})
    with pytest.raises(ConfigError, match="group 'Bad Group'"):
        parse_config({"station": STATION, "mqtt": {"groups": ["Bad Group"]}})


def test_signature_required_without_keys_is_an_error():
    with pytest.raises(ConfigError, match="require_signature is true but security.issuers is empty"):
        parse_config({"station": STATION, "security": {"require_signature": True}})


def test_the_watchdog_stall_is_a_key_that_must_outlast_a_sentence():
    fast = parse_config({"station": STATION, "service": {"watchdog_stall_s": 8}, "tts": {"deadline_s": 2}})
    assert fast.service.watchdog_stall_s == 8  # a test or a fast board need not wait a minute
    with pytest.raises(ConfigError, match=r"service.watchdog_stall_s \(10\) must be longer than tts.deadline_s \(20\)"):
        parse_config({"station": STATION, "service": {"watchdog_stall_s": 10}})


def test_relative_paths_resolve_against_the_file(tmp_path):
    path = tmp_path / "conf" / "station.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"station": STATION, "storage": {"dir": "var"}, "text": {"lexicon": "lex.yaml"}}))
    settings = load_config(path)
    assert settings.storage.dir == (tmp_path / "conf" / "var").resolve()
    assert settings.text.lexicon == (tmp_path / "conf" / "lex.yaml").resolve()
    assert settings.control_socket == settings.storage.dir / "control.sock"


def test_settings_are_frozen():
    settings = parse_config({"station": STATION})
    with pytest.raises(ValidationError, match="frozen"):
        settings.audio.volume = 0.1  # type: ignore[misc]


def test_missing_file_and_bad_yaml_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("station: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_command_masks_the_password(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"station": STATION, "mqtt": {"username": "hue/phu-vang/loa-1", "password": "s3cret"}})
    )
    assert main(["config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "password: '****'" in out and "hue/phu-vang/loa-1" in out


def test_config_command_fails_with_exit_1_on_a_bad_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"station": {**STATION, "id": "UPPER"}}))
    assert main(["config", "--config", str(path)]) == 1


def test_masked_keeps_empty_passwords_visible():
    settings = parse_config({"station": STATION})
    assert masked(settings)["mqtt"]["password"] is None
