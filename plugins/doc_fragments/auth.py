# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  auth_method:
    description:
      - How to authenticate to Vault.
      - V(token) uses O(token), then E(VAULT_TOKEN) (E(BAO_TOKEN)), then the file C(~/.vault-token) written by
        the vault CLI.
      - V(approle) logs in with O(role_id) and O(secret_id).
      - V(userpass) logs in with O(username) and O(password).
      - V(kubernetes) logs in with a service-account JWT (O(jwt) or O(jwt_file)) and the role O(role_id).
      - V(cert) logs in with the TLS client certificate O(client_cert)/O(client_key), optionally for the
        certificate role O(role_id).
      - When not set, E(VAULT_AUTH_METHOD) is used, then V(token).
    type: str
    choices: [approle, cert, kubernetes, token, userpass]
  auth_mount:
    description:
      - Path where the auth method is mounted, when it is not the method's name (for example V(kubernetes-east)).
      - When not set, E(VAULT_AUTH_MOUNT) is used, then the method's name.
    type: str
  token:
    description:
      - Vault token for O(auth_method=token). Never logged or returned.
    type: str
  role_id:
    description:
      - For O(auth_method=approle), the AppRole role ID (default from E(VAULT_ROLE_ID)).
      - For O(auth_method=kubernetes), the name of the Kubernetes auth role to log in as.
      - For O(auth_method=cert), the certificate role name; when not set Vault tries every role.
    type: str
  secret_id:
    description:
      - AppRole secret ID for O(auth_method=approle) (default from E(VAULT_SECRET_ID)). Never logged or returned.
    type: str
  username:
    description: User name for O(auth_method=userpass) (default from E(VAULT_USERNAME)).
    type: str
  password:
    description: Password for O(auth_method=userpass) (default from E(VAULT_PASSWORD)). Never logged or returned.
    type: str
  jwt:
    description:
      - Service-account JWT for O(auth_method=kubernetes). Never logged or returned.
      - When not set, the token is read from O(jwt_file).
    type: str
  jwt_file:
    description:
      - File holding the service-account JWT for O(auth_method=kubernetes).
      - Defaults to C(/var/run/secrets/kubernetes.io/serviceaccount/token), the token Kubernetes mounts into pods.
    type: path
'''
