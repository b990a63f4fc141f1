# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one module runtime of the collection.

A module file is its documentation, its argument spec and one call::

    ARGUMENT_SPEC = module_spec(dict(name=dict(type="str", required=True)))   # at import time

    def main():
        MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True, path_options=dict(name="name"),
                      requires=("cryptography",)).run(manage_policy)

- :func:`module_spec` adds the shared option sets (connection and auth for a module that talks to Vault) to the
  module's own options. An own option (or alias) with the name of a shared one raises :class:`ArgspecClash` when the
  module file is imported: it would silently replace the shared option (the bug of issue #16, where a module's
  ``jwt`` took the place of the login's ``jwt``).
- :class:`GuardedModule` checks hostile input before anything else happens: path-forming options (no traversal),
  private keys pasted into options that are not no_log (masked at once, then refused), and the AnsiballZ file
  ANSIBLE_KEEP_REMOTE_FILES leaves behind (a warning).
- :class:`MeshPkiModule` adds the Vault connection (resolved once) and the authenticated client,
  :meth:`MeshPkiModule.requires` for Python libraries (imported when asked, so a module loads only what it uses),
  and :meth:`MeshPkiModule.run`: the one exit - ``fn(module)`` returns the result dict, ``diff`` is kept only in
  diff mode, a ``MeshPkiError`` becomes ``fail_json`` with its message and details, anything else fails with the
  module's name and the traceback (shown at -vvv).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import kept_module_file, private_key_options
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import CA_LAYOUT_ARGSPEC, ca_layout_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.methods import AUTH_ARGSPEC, authenticator_for
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import (
    CONNECTION_ARGSPEC,
    VaultConnection,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import check_path_options

# The option sets modules share, by name (module_spec(shared=...)); the CA layout may be taken in part.
SHARED_ARGSPECS = {"connection": CONNECTION_ARGSPEC, "auth": AUTH_ARGSPEC, "ca_layout": CA_LAYOUT_ARGSPEC}
VAULT_SHARED = ("connection", "auth")


class ArgspecClash(ValueError):
    """A module's own option (or alias) has the name of a shared option: raised when the module is imported."""


def _names(spec):
    names = {}
    for option, definition in spec.items():
        names[option] = option
        for alias in definition.get("aliases") or ():
            names[alias] = option
    return names


def module_spec(own, shared=VAULT_SHARED, ca_layout=()):
    """The shared option sets named in ``shared`` plus the CA layout options named in ``ca_layout``
    (pki.layout: ``CA_LAYOUT`` for all five, ``SIGNING_LAYOUT``) plus the module's ``own`` options.

    Raises ArgspecClash when an own option or alias uses the name (or alias) of a shared option, or two shared
    sets overlap: nothing may shadow a shared option silently."""
    spec = {}
    taken = {}
    for set_name in shared:
        for name, option in _names(SHARED_ARGSPECS[set_name]).items():
            if name in taken:
                raise ArgspecClash("shared option sets %s and %s both define %r" % (taken[name][0], set_name, name))
            taken[name] = (set_name, option)
        spec.update(SHARED_ARGSPECS[set_name])
    layout = ca_layout_spec(ca_layout)
    for name, option in _names(layout).items():
        taken.setdefault(name, ("ca_layout", option))
    spec.update(layout)
    clashes = sorted("%s (shared %s option %s)" % (name, taken[name][0], taken[name][1])
                     for name in _names(own) if name in taken)
    if clashes:
        raise ArgspecClash("module options shadow shared options: %s; give the module's option another name"
                           % ", ".join(clashes))
    spec.update(own)
    return spec


def vault_argspec(own):
    """The connection and auth options plus the module's own (see module_spec)."""
    return module_spec(own, VAULT_SHARED)


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
        """The one failure exit for a MeshPkiError, with the hvac version for a module that talks to Vault (as
        amazon.aws gives botocore's)."""
        versions = dict(hvac_version=_hvac_version()) if getattr(self, "_vault", True) else {}
        versions.update(error.details)
        self.fail_json(msg=str(error), **versions)


def _hvac_version():
    try:
        from importlib.metadata import version
        return version("hvac")
    except Exception:  # metadata missing (vendored hvac): the version is only informative
        return None


# Python libraries a module may need: the name missing_required_lib shows and the import name.
LIBRARIES = {"hvac": "hvac", "cryptography": "cryptography", "kubernetes": "kubernetes", "PyYAML": "yaml"}


class MeshPkiModule(GuardedModule):
    """``argument_spec`` comes from module_spec(); ``vault=True`` when it holds the connection and auth options
    (then get_authenticated_client() works and hvac is required, unless ``hvac_required=False`` for a module that
    contacts Vault only for some inputs); ``requires`` names Python libraries (LIBRARIES) checked at start."""

    def __init__(self, argument_spec, vault=True, path_options=None, requires=(), hvac_required=True, **kwargs):
        paths = dict(SHARED_PATH_OPTIONS) if vault else {}
        paths.update(path_options or {})
        self._vault = vault  # before the checks in GuardedModule, which may fail_from()
        super(MeshPkiModule, self).__init__(argument_spec, path_options=paths, **kwargs)
        self._connection = None
        self.requires(*(tuple(requires) + (("hvac",) if vault and hvac_required else ())))

    def requires(self, *names):
        """Fail with Ansible's missing-library message (and the import error at -vvv) when one is not installed."""
        for name in names:
            try:
                __import__(LIBRARIES[name])
            except ImportError:
                self.fail_json(msg=missing_required_lib(name), exception=traceback.format_exc())

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
        self.requires("hvac")
        conn = self.connection()
        auth = authenticator_for(self.params)
        client = conn.client()
        login = auth.authenticate(client, conn)
        return VaultClient(client, conn, login_response=login)

    def run(self, fn):
        """Call ``fn(self)``, which returns the result dict (``changed`` and, when it has one, ``diff``), and exit.
        The one place that turns errors into a failure."""
        try:
            result = fn(self)
        except MeshPkiError as e:
            self.fail_from(e)
        except Exception as e:  # a bug: say which module, keep the traceback for -vvv
            self.fail_json(msg="%s failed unexpectedly: %s: %s. This is a bug in meshpki.vault_ca; run with -vvv "
                               "for the traceback and report it." % (self._name, type(e).__name__, e),
                           exception=traceback.format_exc())
        result = dict(result)
        result.setdefault("changed", False)
        if not self._diff:
            result.pop("diff", None)
        self.exit_json(**result)
