"""Secrets at rest: sealed with the first key, unsealed with any; a key made on first use."""
from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from aggregator.vault import Vault, VaultError


def test_sealed_text_is_unsealed_and_is_not_the_text():
    vault = Vault([Fernet.generate_key().decode()])
    sealed = vault.seal("whsec_abc")
    assert "whsec_abc" not in sealed and vault.unseal(sealed) == "whsec_abc"


def test_keys_rotate_the_first_seals_and_every_one_unseals():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = Vault([old]).seal("secret")
    rotated = Vault([new, old])
    assert rotated.unseal(sealed_before) == "secret"
    assert Vault([new]).unseal(rotated.seal("next")) == "next"  # sealed with the new key
    with pytest.raises(VaultError, match="AGGREGATOR_SECRET_KEYS"):
        Vault([new]).unseal(sealed_before)


def test_without_keys_one_is_generated_into_a_private_file_and_reused(tmp_path):
    key_file = tmp_path / "var" / "secret.key"
    sealed = Vault(key_file=key_file).seal("secret")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Vault(key_file=key_file).unseal(sealed) == "secret"  # another process, the same key
    assert list(key_file.parent.iterdir()) == [key_file]


def test_settings_read_the_keys_and_the_operator_switch_from_the_environment(tmp_path):
    from aggregator.config import Settings

    keys = [Fernet.generate_key().decode() for _ in range(2)]
    settings = Settings.from_env({"AGGREGATOR_SECRET_KEYS": f" {keys[0]}, {keys[1]} ",
                                  "AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE": "1", "AGGREGATOR_VAR_DIR": str(tmp_path)})
    assert settings.secret_keys == tuple(keys) and settings.webhooks_allow_private is True
    default = Settings.from_env({"AGGREGATOR_VAR_DIR": str(tmp_path)})
    assert default.secret_keys == () and default.webhooks_allow_private is False
    assert default.secret_key_file == tmp_path / "secret.key"
