# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/auth/kubernetes.py: the role (role_id) and the service-account JWT (jwt, or read from jwt_file) posted to
auth/<mount>/login."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth import kubernetes
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.kubernetes import KubernetesAuth
from harness.fake_vault import FakeVault, login_answer


def posted(params, path="auth/kubernetes/login"):
    method = KubernetesAuth(params)
    method.validate()
    vault = FakeVault({("POST", path): login_answer()})
    method.authenticate(vault.hvac, vault.conn)
    assert vault.writes() == [("POST", path)]
    return vault.body("POST", path)


def test_role_and_jwt_are_posted():
    assert posted({"role_id": "ansible", "jwt": "eyJ.sa.jwt"}) == {"role": "ansible", "jwt": "eyJ.sa.jwt"}


def test_the_jwt_is_read_from_jwt_file_and_stripped(tmp_path):
    token = tmp_path / "token"
    token.write_text("eyJ.from.file\n")
    assert posted({"role_id": "ansible", "jwt_file": str(token), "auth_mount": "kubernetes-east"},
                  path="auth/kubernetes-east/login") == {"role": "ansible", "jwt": "eyJ.from.file"}


def test_the_pod_token_is_the_default_file(tmp_path, monkeypatch):
    token = tmp_path / "sa-token"
    token.write_text("eyJ.pod")
    monkeypatch.setattr(kubernetes, "DEFAULT_JWT_FILE", str(token))
    assert posted({"role_id": "ansible"}) == {"role": "ansible", "jwt": "eyJ.pod"}


def test_a_missing_role_is_refused():
    with pytest.raises(MeshPkiError) as caught:
        KubernetesAuth({"jwt": "eyJ"}).validate()
    assert str(caught.value) == ("auth_method 'kubernetes' needs the role_id (the Kubernetes auth role name) "
                                 "option.")


def test_an_unreadable_jwt_file_is_refused_naming_it(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(MeshPkiError) as caught:
        KubernetesAuth({"role_id": "ansible", "jwt_file": missing}).validate()
    assert str(caught.value) == ("auth_method 'kubernetes' needs a service-account JWT: set jwt, or jwt_file to a "
                                 "readable token file ('%s': No such file or directory)." % missing)


def test_an_empty_jwt_file_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(MeshPkiError, match="auth_method 'kubernetes': the service-account JWT is empty."):
        KubernetesAuth({"role_id": "ansible", "jwt_file": str(empty)}).validate()
