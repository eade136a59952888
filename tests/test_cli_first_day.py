"""A new user's first commands (issue 12): config found as `run` finds it, options anywhere, help that helps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loaxa import config as config_module
from loaxa.cli import COMMANDS, build_parser
from loaxa.config import INSTALL_DIR, find_config, load_config
from loaxa.errors import ConfigError

STATION = {"province": "hn", "commune": "ba-vi", "id": "loa-1"}


def loaxa(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "LOAXA_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "loaxa", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "COLUMNS": "80", **(env or {})},
        cwd=cwd,
    )


def test_config_is_found_as_run_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named, env_file, system = tmp_path / "named.yaml", tmp_path / "env.yaml", tmp_path / "etc.yaml"
    system.write_text("x: 1")
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", system)
    monkeypatch.setenv("LOAXA_CONFIG", str(env_file))
    assert find_config(str(named)) == named  # the flag first
    assert find_config(None) == env_file  # then $LOAXA_CONFIG
    monkeypatch.delenv("LOAXA_CONFIG")
    assert find_config(None) == system  # then /etc/loaxa/loaxa.yaml
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", tmp_path / "absent.yaml")
    assert find_config(None) == INSTALL_DIR / "config" / "loaxa.example.yaml"  # then the example of a checkout
    monkeypatch.setattr(config_module, "EXAMPLE_CONFIG", tmp_path / "absent-too.yaml")
    with pytest.raises(ConfigError, match="no configuration file: pass --config FILE, set LOAXA_CONFIG"):
        config_module.config_path(None)


def test_commands_from_the_readme_need_no_config_flag_in_a_checkout() -> None:
    """`loaxa voices list` and `loaxa log --since 12h` said "no configuration file"."""
    voices = loaxa("voices", "list")
    assert voices.returncode == 0, voices.stderr
    assert "no configuration file" not in voices.stderr
    log = loaxa("log", "--since", "12h")
    assert "no configuration file" not in log.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("-c", "{cfg}", "config"),
        ("config", "-c", "{cfg}"),
        ("voices", "-c", "{cfg}", "list"),
        ("voices", "list", "-c", "{cfg}"),
        ("voices", "list", "--dir", "{dir}"),
        ("voices", "--dir", "{dir}", "list"),
        ("-v", "config", "--config", "{cfg}"),
        ("config", "-v", "--config", "{cfg}"),
    ],
    ids=" ".join,
)
def test_options_work_before_or_after_the_sub_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"station": STATION, "tts": {"voices_dir": str(tmp_path / "v")}}))
    done = loaxa(*(a.format(cfg=cfg, dir=tmp_path / "v") for a in args))
    assert done.returncode == 0, done.stderr
    assert "unrecognized arguments" not in done.stderr


def test_voices_install_takes_dir_and_config_after_the_name(tmp_path: Path) -> None:
    """tts_models/README.md writes `loaxa voices install NAME --dir D`."""
    args = build_parser(["voices"]).parse_args(["voices", "install", "vi_VN-vais1000-medium", "--dir", str(tmp_path)])
    assert args.dir == tmp_path and args.name == "vi_VN-vais1000-medium"
    args = build_parser(["voices"]).parse_args(["voices", "install", "x", "-c", "c.yaml"])
    assert args.config == "c.yaml"


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_loaxa_alone_lists_every_command_one_line_each_at_80_columns(lang: str) -> None:
    from loaxa import i18n

    done = loaxa("--lang", lang)
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    translated = i18n.translations(lang).gettext
    for name, _, help in COMMANDS:
        [line] = [line for line in lines if line.split()[:1] == [name]]
        assert translated(help) in line and len(line) <= 80, line
    assert "the following arguments are required" not in done.stderr


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_every_sub_command_has_a_description(name: str) -> None:
    parser = build_parser([name])
    sub = next(a for a in parser._actions if a.dest == "command").choices[name]  # type: ignore[union-attr]
    assert sub.description and len(sub.description) > 10


def test_cap_help_mentions_only_options_cap_has() -> None:
    helped = loaxa("cap", "--help").stdout
    assert "--at" not in helped and "--daily" not in helped


def test_config_checks_the_lexicon_file_as_run_would(tmp_path: Path) -> None:
    """`config -c FILE` passed a config whose text.lexicon did not exist; `run` then refused it."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"station": STATION, "text": {"lexicon": "missing.yaml"}}))
    done = loaxa("config", "-c", str(cfg))
    assert done.returncode == 1
    assert f"text.lexicon: lexicon {tmp_path / 'missing.yaml'}: file not found" in done.stderr


def test_a_station_slug_error_says_what_to_type(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"station": {**STATION, "commune": "Ba-Vi"}}))
    done = loaxa("config", "-c", str(cfg))
    assert done.returncode == 1
    assert "station.commune" in done.stderr and "use lower-case letters a-z, digits and '-'" in done.stderr
    assert "^[a-z0-9-]" not in done.stderr


def test_voices_dir_resolves_against_the_install_folder_wherever_the_config_is(tmp_path: Path) -> None:
    """The example's voices_dir pointed at /etc/tts_models once the file was copied to /etc/loaxa."""
    etc = tmp_path / "etc" / "loaxa"
    etc.mkdir(parents=True)
    copy = etc / "loaxa.yaml"
    copy.write_text((INSTALL_DIR / "config" / "loaxa.example.yaml").read_text())
    settings = load_config(copy)
    assert settings.tts.voices_dir == INSTALL_DIR / "tts_models"
    assert load_config(INSTALL_DIR / "config" / "loaxa.example.yaml").tts.voices_dir == INSTALL_DIR / "tts_models"
    default = yaml.safe_dump({"station": STATION})
    copy.write_text(default)
    assert load_config(copy).tts.voices_dir == INSTALL_DIR / "tts_models"


def test_doctor_suggests_only_tools_that_are_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loaxa import doctor

    monkeypatch.setattr(doctor.shutil, "which", lambda tool: None)
    settings = config_module.parse_config({"station": STATION, "audio": {"output": "no-such-card"}})
    finding = doctor.check_audio(settings)
    assert finding.status == doctor.FAIL and "aplay" not in finding.fix
    assert "no sound device named 'no-such-card'; devices found:" in finding.detail
    assert "timedatectl" not in doctor.check_clock(settings, synced=lambda: False).fix
    monkeypatch.setattr(doctor.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert "`aplay -L`" in doctor.check_audio(settings).fix


def test_keys_generate_writes_a_private_per_user_file_not_into_the_working_folder(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    done = loaxa("keys", "generate", "--kid", "hn-2030", env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    key = home / ".config" / "loaxa" / "keys" / "hn-2030.key"
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert list(work.iterdir()) == []
    assert f"--key {key}" in done.stdout
    ignored = subprocess.run(["git", "check-ignore", "-q", "issuer.key"], cwd=INSTALL_DIR)
    assert ignored.returncode == 0  # a key file made in the checkout stays out of git
