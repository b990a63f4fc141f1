# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The kubeconfig file and context, resolved the way kubernetes.core resolves them.
    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to the kubeconfig file that names the cluster (API server URL and CA) and the credentials.
      - When not set, E(K8S_AUTH_KUBECONFIG) is used, then the first file of E(KUBECONFIG), then C(~/.kube/config)
        - the same order as the C(kubernetes.core) collection.
      - Files named by the kubeconfig (for example C(certificate-authority)) are relative to its directory.
      - A cluster entry with C(insecure-skip-tls-verify) set is honoured, with a warning that names the cluster
        entry and the file; give it C(certificate-authority-data) instead outside of tests.
      - Redirects from the API server are followed only within the same scheme, host and port as the cluster
        entry's C(server); a redirect to another origin fails naming its C(Location), and neither the bearer token
        nor the client certificate is sent there.
    type: path
  context:
    description:
      - Name of the kubeconfig context to use; it selects the cluster entry (server and CA) and the user.
      - When not set, E(K8S_AUTH_CONTEXT) is used, then the kubeconfig's C(current-context).
      - An unknown context is an error that lists the contexts the file has.
    type: str
requirements:
  - PyYAML, to read the kubeconfig
  - kubernetes (the Python client), for the calls to the Kubernetes API
'''
