# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The auth strategies read environment variables and ~/.vault-token when an option is not set: every test here
starts without any of them (HOME is an empty directory)."""

import pytest

AUTH_ENV = ("VAULT_TOKEN", "BAO_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_USERNAME", "VAULT_PASSWORD",
            "VAULT_AUTH_METHOD", "VAULT_AUTH_MOUNT")


@pytest.fixture(autouse=True)
def clean_auth_environment(monkeypatch, tmp_path):
    for name in AUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path
