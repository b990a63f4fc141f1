# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""VaultModule: an AnsibleModule with the shared connection and auth options, one place that
builds the authenticated client, and one place that turns MeshPkiError into fail_json."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshpki.vault_ca.plugins.module_utils._authenticator import AUTH_ARGSPEC, authenticator_for
from ansible_collections.meshpki.vault_ca.plugins.module_utils._vault_client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils._vault_connection import (
    CONNECTION_ARGSPEC,
    VaultConnection,
)

try:
    import hvac
except ImportError:
    HAS_HVAC = False
    HVAC_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_HVAC = True
    HVAC_IMPORT_ERROR = None


def vault_argspec(module_spec):
    """The shared connection and auth options plus the module's own ones (which win on a clash)."""
    spec = dict(CONNECTION_ARGSPEC)
    spec.update(AUTH_ARGSPEC)
    spec.update(module_spec)
    return spec


class VaultModule(AnsibleModule):
    def __init__(self, argument_spec, hvac_required=True, **kwargs):
        """``hvac_required=False`` for modules that contact Vault only for some inputs: then hvac is
        checked when get_authenticated_client() is called."""
        super(VaultModule, self).__init__(argument_spec=vault_argspec(argument_spec), **kwargs)
        self._connection = None
        if hvac_required:
            self._require_hvac()

    def _require_hvac(self):
        if not HAS_HVAC:
            self.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMPORT_ERROR)

    def connection(self):
        """The connection settings (params, then environment), resolved once per module run: the warning about
        disabled TLS verification is given once however many clients are built from it."""
        if self._connection is None:
            self._connection = VaultConnection.from_params(self.params)
            if not self._connection.validate_certs:
                self.warn("TLS certificate verification of %s is disabled (validate_certs: false or "
                          "VAULT_SKIP_VERIFY); use ca_cert outside of tests." % self._connection.url)
        return self._connection

    def get_authenticated_client(self):
        """Resolve the connection (params, then environment), log in, return a VaultClient."""
        self._require_hvac()
        conn = self.connection()
        auth = authenticator_for(self.params)
        client = conn.client()
        login = auth.authenticate(client, conn)
        return VaultClient(client, conn, login_response=login)

    def fail_from(self, error):
        """The one failure exit for a MeshPkiError, with the library versions (as amazon.aws does)."""
        self.fail_json(msg=str(error), hvac_version=_hvac_version(), **error.details)


def _hvac_version():
    try:
        from importlib.metadata import version
        return version(hvac.__name__)
    except Exception:  # metadata missing (vendored hvac): the version is only informative
        return None
