# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  url:
    description:
      - URL of the Vault or OpenBao server, for example V(https://vault.example.com:8200).
      - When not set, E(VAULT_ADDR) is used, then E(BAO_ADDR).
      - Redirects are followed only within the same scheme, host and port as this URL (at most 3). A redirect to
        another origin, https to http included, fails naming its C(Location), before the token or the login
        credentials (such as the AppRole C(secret_id)) are sent there. Point O(url) at the active node or at the
        load balancer in front of the cluster; Vault and OpenBao standbys forward requests to the active node by
        default.
    type: str
    aliases: [vault_addr]
  namespace:
    description:
      - Vault Enterprise or OpenBao namespace to work in.
      - When not set, E(VAULT_NAMESPACE) is used, then E(BAO_NAMESPACE).
    type: str
  ca_cert:
    description:
      - Path to a PEM file with the CA certificate(s) used to verify Vault's TLS certificate.
      - When not set, E(VAULT_CACERT) is used, then E(BAO_CACERT); otherwise the system trust store.
    type: path
    aliases: [cacert]
  validate_certs:
    description:
      - Whether to verify Vault's TLS certificate. Turn off only for test servers; the module warns.
      - When not set, verification is on unless E(VAULT_SKIP_VERIFY) (or E(BAO_SKIP_VERIFY)) is true.
    type: bool
  client_cert:
    description:
      - Path to a PEM client certificate for mutual TLS (and for O(auth_method=cert)).
      - When not set, E(VAULT_CLIENT_CERT) is used, then E(BAO_CLIENT_CERT).
    type: path
  client_key:
    description:
      - Path to the private key of O(client_cert).
      - When not set, E(VAULT_CLIENT_KEY) is used, then E(BAO_CLIENT_KEY).
    type: path
  timeout:
    description: Seconds to wait for each request to Vault.
    type: int
    default: 30
  retries:
    description:
      - How many times to retry a request after a connection error or a retryable status, with
        exponential backoff (O(retry_backoff) seconds, doubled each time).
      - Statuses 412, 429 and 503 are retried for every request; 500, 502 and 504 only for
        idempotent requests (reads, PUT, DELETE), so a key-generating POST is never sent twice.
        Errors caused by the input (400, 403, 404) are never retried.
      - V(0) disables retries.
    type: int
    default: 3
  retry_backoff:
    description: Backoff factor in seconds between retries (0.5 gives 0.5 s, 1 s, 2 s...).
    type: float
    default: 0.5
'''
