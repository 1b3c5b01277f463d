"""Settings: conf/settings.toml defaults, MODELRUNNER_* overrides, DMR's variable names."""

import pytest

from modelrunner.settings import load_settings, server_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("MODELS_PATH", "MODEL_RUNNER_HOST", "MODEL_RUNNER_PORT", "MODELRUNNER_PORT",
                 "MODELRUNNER_MODELS_PATH", "MODELRUNNER_HOST", "MODELRUNNER_KEEP_ALIVE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_come_from_conf_settings_toml(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings()
    assert settings.port == 12434
    assert settings.host == "127.0.0.1"
    assert settings.keep_alive == "5m"
    assert settings.models_path == str(tmp_path / ".docker" / "models")


def test_modelrunner_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELRUNNER_PORT", "9999")
    monkeypatch.setenv("MODELRUNNER_KEEP_ALIVE", "30s")
    monkeypatch.setenv("MODELRUNNER_MODELS_PATH", str(tmp_path))
    settings = load_settings()
    assert settings.port == 9999 and settings.keep_alive == "30s"
    assert settings.models_path == str(tmp_path)


def test_dmr_variable_names_are_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELS_PATH", str(tmp_path / "m"))
    monkeypatch.setenv("MODEL_RUNNER_PORT", "13000")
    settings = load_settings()
    assert settings.models_path == str(tmp_path / "m") and settings.port == 13000
    monkeypatch.setenv("MODEL_RUNNER_HOST", "http://10.1.2.3:4567")
    assert server_url() == "http://10.1.2.3:4567"
