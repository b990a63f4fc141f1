# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes side, shared by vault_k8s_auth and tsb_controlplane_annotations: kubeconfig and
context (with kubernetes.core's environment variables), the cluster entry (server and CA) for
Vault's Kubernetes auth config, an API client, and ApiException -> MeshPkiError.

The kubernetes library is imported only when an API client is built (:func:`kubernetes_library`): it costs
more to import than anything else a module loads, and a Vault-only or file-mode call never contacts a
Kubernetes API."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import sys
import traceback

from ansible_collections.meshpki.vault_ca.plugins.module_utils.environ import env
from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError, RedirectRefused

try:
    import yaml
except ImportError:
    yaml = None


def kubernetes_library(what="The kubernetes Python library is needed (pip install kubernetes)."):
    """The ``kubernetes`` package with its ``client`` and ``config`` loaded, imported on first use; a
    MeshPkiError saying ``what`` when it is not installed."""
    try:
        import kubernetes.client
        import kubernetes.config
    except ImportError:
        raise MeshPkiError(what, exception=traceback.format_exc())
    return kubernetes


def is_api_exception(exc, status=None):
    """Whether ``exc`` is the kubernetes client's ApiException (with ``status``, when given). Never imports the
    library: when it is not loaded, nothing can have raised one."""
    exceptions = sys.modules.get("kubernetes.client.exceptions")
    api_exception = getattr(exceptions, "ApiException", None)
    if api_exception is None or not isinstance(exc, api_exception):
        return False
    return status is None or exc.status == status


KUBE_ARGSPEC = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
)

DEFAULT_KUBECONFIG = "~/.kube/config"


def kubeconfig_path(params):
    """The kubeconfig option, then K8S_AUTH_KUBECONFIG, then KUBECONFIG (first file), then ~/.kube/config."""
    path = params.get("kubeconfig") or env("K8S_AUTH_KUBECONFIG")
    if not path:
        kubeconfig_env = env("KUBECONFIG")
        path = kubeconfig_env.split(os.pathsep)[0] if kubeconfig_env else DEFAULT_KUBECONFIG
    return os.path.expanduser(path)


def context_name(params):
    return params.get("context") or env("K8S_AUTH_CONTEXT")


def load_kubeconfig(path):
    """The kubeconfig as a dict; MeshPkiError when it cannot be read or is not a kubeconfig."""
    if yaml is None:
        raise MeshPkiError("PyYAML is needed to read the kubeconfig '%s'." % path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (IOError, OSError) as e:
        raise MeshPkiError("Cannot read the kubeconfig '%s' (%s). Set kubeconfig (or K8S_AUTH_KUBECONFIG / "
                           "KUBECONFIG) to a readable file." % (path, e.strerror or e))
    except yaml.YAMLError as e:
        raise MeshPkiError("The kubeconfig '%s' is not valid YAML: %s" % (path, e))
    if not isinstance(data, dict) or not isinstance(data.get("contexts"), list):
        raise MeshPkiError("The file '%s' is not a kubeconfig (no contexts list)." % path)
    return data


def _named(entries, name):
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def cluster_entry(params):
    """{"context", "server", "ca_pem" (or None), "insecure"} of the selected context's cluster."""
    path = kubeconfig_path(params)
    data = load_kubeconfig(path)
    name = context_name(params) or data.get("current-context")
    if not name:
        raise MeshPkiError("The kubeconfig '%s' has no current-context; set context (or K8S_AUTH_CONTEXT)." % path)
    context = _named(data.get("contexts"), name)
    if context is None:
        known = ", ".join(sorted(c.get("name", "?") for c in data["contexts"] if isinstance(c, dict))) or "none"
        raise MeshPkiError("Unknown context '%s' in the kubeconfig '%s' (contexts: %s)." % (name, path, known))
    cluster_name = (context.get("context") or {}).get("cluster")
    cluster = (_named(data.get("clusters"), cluster_name) or {}).get("cluster")
    if not cluster or not cluster.get("server"):
        raise MeshPkiError("Context '%s' in '%s' names cluster '%s', which has no server entry."
                           % (name, path, cluster_name))
    ca_pem = None
    if cluster.get("certificate-authority-data"):
        try:
            ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
        except (ValueError, TypeError, UnicodeDecodeError):
            raise MeshPkiError("certificate-authority-data of cluster '%s' in '%s' is not base64 PEM."
                               % (cluster_name, path))
    elif cluster.get("certificate-authority"):
        ca_file = os.path.join(os.path.dirname(path), os.path.expanduser(cluster["certificate-authority"]))
        try:
            with open(ca_file) as f:
                ca_pem = f.read()
        except (IOError, OSError) as e:
            raise MeshPkiError("Cannot read the cluster CA '%s' named in '%s': %s" % (ca_file, path, e.strerror or e))
    # insecure as the kubernetes client reads it (any true value, even the string "false")
    return dict(context=name, cluster=cluster_name, server=cluster["server"], ca_pem=ca_pem,
                insecure=bool(cluster.get("insecure-skip-tls-verify")), kubeconfig=path)


def insecure_warning(entry):
    """The warning for a cluster entry that skips TLS verification, or None."""
    if not entry.get("insecure"):
        return None
    return ("TLS certificate verification of the Kubernetes API %s is disabled: cluster entry '%s' (context '%s') "
            "in the kubeconfig '%s' sets insecure-skip-tls-verify: true, so the kubeconfig's credentials go to "
            "whoever answers at that address. Set certificate-authority-data (or certificate-authority) in that "
            "cluster entry instead, outside of tests."
            % (entry["server"], entry.get("cluster"), entry["context"], entry["kubeconfig"]))


def api_client(params, warn):
    """A kubernetes.client.ApiClient for the kubeconfig/context in params (validated first, so
    errors name the file and the known contexts). ``warn`` (module.warn) is told when the cluster entry
    skips TLS verification. The client follows redirects only within the server's origin."""
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.redirects import guard_pool_manager

    kubernetes = kubernetes_library()
    entry = cluster_entry(params)
    warning = insecure_warning(entry)
    if warning:
        warn(warning)
    try:
        client = kubernetes.config.new_client_from_config(config_file=entry["kubeconfig"], context=entry["context"])
    except Exception as e:  # kubernetes raises ConfigException and assorted errors; translated here
        raise MeshPkiError("Cannot build a Kubernetes client from '%s' context '%s': %s"
                           % (entry["kubeconfig"], entry["context"], e))
    guard_pool_manager(client.rest_client.pool_manager,
                       "Point the server of cluster entry '%s' in the kubeconfig '%s' at the API server itself "
                       "(the address that answers without redirecting)." % (entry["cluster"], entry["kubeconfig"]))
    return client


def status_message(exc):
    """The message of a Kubernetes Status body, else the reason."""
    try:
        body = json.loads(exc.body)
        return body.get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return getattr(exc, "reason", None) or str(exc)


def describe_api_error(exc, action, what):
    """MeshPkiError for an error of the Kubernetes API while doing ``action`` on ``what``."""
    target = "Failed to %s %s" % (action, what)
    if isinstance(exc, RedirectRefused):
        return MeshPkiError("%s: %s" % (target, exc), **exc.details)
    if is_api_exception(exc):
        message = status_message(exc)
        status = exc.status
        if status == 404 and "could not find the requested resource" in (message or ""):
            return MeshPkiError("%s: the API server does not serve this resource type - is its CRD installed? (%s)"
                                % (target, message), status=404)
        if status == 404:
            return MeshPkiError("%s: not found (%s)." % (target, message), status=404)
        if status == 403:
            return MeshPkiError("%s: forbidden - %s. Grant that verb on that resource to the kubeconfig's user."
                                % (target, message), status=403)
        if status == 401:
            return MeshPkiError("%s: unauthorized - the kubeconfig's credentials were refused (%s)."
                                % (target, message), status=401)
        return MeshPkiError("%s: %s %s" % (target, status, message), status=status)
    return MeshPkiError("%s: cannot reach the Kubernetes API (%s: %s)." % (target, exc.__class__.__name__, exc))
