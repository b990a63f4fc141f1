# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GuardedModule: an AnsibleModule that checks hostile input before anything else happens - path-forming
options (no traversal), private keys pasted into options that are not no_log (masked at once, then refused),
and the AnsiballZ file ANSIBLE_KEEP_REMOTE_FILES leaves behind (a warning). VaultModule: a GuardedModule with
the shared connection and auth options, one place that builds the authenticated client, and one place that
turns MeshPkiError into fail_json."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import kept_module_file, private_key_options
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.methods import AUTH_ARGSPEC, authenticator_for
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import (
    CONNECTION_ARGSPEC,
    VaultConnection,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import check_path_options

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


# The shared options that form Vault paths (the connection's namespace, the auth method's mount).
SHARED_PATH_OPTIONS = {"namespace": "namespace", "auth_mount": "mount"}


class GuardedModule(AnsibleModule):
    """``path_options`` maps each option that becomes part of a Vault (or Kubernetes) path to its kind
    (see vault.paths.KINDS); dotted names reach into sub-options ('vault_paths.kv_path')."""

    def __init__(self, argument_spec, path_options=None, **kwargs):
        self._private_keys = None
        super(GuardedModule, self).__init__(argument_spec=argument_spec, **kwargs)
        self._mask_private_keys()
        if self._private_keys:
            options = [option for option, _secrets in self._private_keys]
            self.fail_json(msg="%s contains a private key; pass only certificates. The key was masked in this "
                               "task's output and nothing was sent to Vault or Kubernetes. A private key belongs "
                               "only in an option that is marked no_log (e.g. pem_bundle)." % ", ".join(options),
                           options=options)
        try:
            check_path_options(self.params, path_options or {})
        except MeshPkiError as e:
            self.fail_from(e)

    def _mask_private_keys(self):
        """Find private keys in options that are not no_log and add them to the values every output masks;
        run before AnsibleModule logs the invocation (syslog/journal), so the key is masked there too."""
        if self._private_keys is None:
            self._private_keys = private_key_options(getattr(self, "params", None) or {}, self.argument_spec)
            for _option, secrets in self._private_keys:
                self.no_log_values.update(secrets)
        return self._private_keys

    def _log_invocation(self):
        self._mask_private_keys()
        super(GuardedModule, self)._log_invocation()

    def _warn_kept_file(self):
        """Once per run, at its exit (also an exit on failed argument validation, before __init__ returns)."""
        if getattr(self, "_kept_file_warned", False):
            return
        self._kept_file_warned = True
        kept = kept_module_file(getattr(self, "_keep_remote_files", False), getattr(self, "_tmpdir", None))
        if kept:
            self.warn("ANSIBLE_KEEP_REMOTE_FILES is on, which also turns pipelining off: this module's arguments, "
                      "credentials included (token, secret_id, password, JWT), stay on disk in %s. Unset "
                      "ANSIBLE_KEEP_REMOTE_FILES (keep_remote_files in ansible.cfg) for any run that handles "
                      "credentials, keep pipelining on (the role does by default), and delete that file."
                      % ", ".join(kept))

    def _return_formatted(self, kwargs):
        # Also an exit before the checks above (a failed argument validation) masks a pasted key and warns
        # about a kept module file.
        if getattr(self, "argument_spec", None) is not None:
            self._mask_private_keys()
        self._warn_kept_file()
        super(GuardedModule, self)._return_formatted(kwargs)

    def fail_from(self, error):
        """The one failure exit for a MeshPkiError, with the library versions (as amazon.aws does)."""
        self.fail_json(msg=str(error), hvac_version=_hvac_version(), **error.details)


class VaultModule(GuardedModule):
    def __init__(self, argument_spec, hvac_required=True, path_options=None, **kwargs):
        """``hvac_required=False`` for modules that contact Vault only for some inputs: then hvac is
        checked when get_authenticated_client() is called."""
        paths = dict(SHARED_PATH_OPTIONS)
        paths.update(path_options or {})
        super(VaultModule, self).__init__(vault_argspec(argument_spec), path_options=paths, **kwargs)
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


def _hvac_version():
    try:
        from importlib.metadata import version
        return version(hvac.__name__)
    except Exception:  # metadata missing (vendored hvac): the version is only informative
        return None
