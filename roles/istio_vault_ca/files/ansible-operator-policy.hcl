# Least-privilege Vault/OpenBao policy for the token Ansible uses to run the role
# meshpki.vault_ca.istio_vault_ca (playbook meshpki.vault_ca.istio_vault_ca) - NOT istiod's policy, which the
# role writes itself (istio_vault_ca_policy_name).
#
#   bao policy write meshpki-operator ansible-operator-policy.hcl      # or: vault policy write ...
#   bao token create -policy=meshpki-operator -no-default-policy -ttl=1h
#
# Derived from the audit log of the role run with a root token against OpenBao, and proven by
# tests/integration/test_operator_policy.py: the whole role runs with a token holding only this policy
# (first run, re-run, check mode, rotation) and Vault denies none of its requests.
#
# Written for the role's default variables. With other names, change the path segments marked below:
#   pki        istio_vault_ca_root_mount           istioca   istio_vault_ca_intermediate_mount
#   secret     istio_vault_ca_kv_mount             istioca   istio_vault_ca_kv_path (after data/, metadata/)
#   pki-trust  istio_vault_ca_trust_bundle_path (after data/, metadata/)
#   istioca    istio_vault_ca_policy_name (sys/policies/acl/<name> and the verify token's "policies")
#   kubernetes istio_vault_ca_k8s_auth_mount       istiod    istio_vault_ca_k8s_role
# Many clusters (one inventory host each): repeat the per-cluster blocks (intermediate, KV, policy, auth) for
# each cluster's names, or use a glob such as "istioca-*" if your naming allows it.
#
# Note: whoever can write the istiod policy and the Kubernetes auth config/role can, in the end, grant
# istiod's role anything. Treat this token as an administrator of the Istio CA: short TTL, not stored
# on disk, revoked after the run. See docs/docsite/rst/security.rst.

# --- Mount tables: the role reads them to find what exists (secrets engines, auth methods) ---------------
path "sys/mounts" {
  capabilities = ["read"]
}
path "sys/auth" {
  capabilities = ["read"]
}

# --- Root CA (istio_vault_ca_root_mount: pki) ---------------------------------------------------------
# Enable the PKI engine once, and tune max_lease_ttl when istio_vault_ca_root_ttl changes.
path "sys/mounts/pki" {
  capabilities = ["update"]
}
path "sys/mounts/pki/tune" {
  capabilities = ["read", "update"]
}
path "pki/root/generate/internal" {
  capabilities = ["update"]
}
# Default issuer: read, and set explicitly after every change.
path "pki/config/issuers" {
  capabilities = ["read", "update"]
}
path "pki/issuers" {
  capabilities = ["list"]
}
# Issuers: read by id; delete only when two runs race on an empty mount (AWX jobs launched together) and the
# loser deletes the root it generated (and its key).
path "pki/issuer/+" {
  capabilities = ["read", "delete"]
}
path "pki/key/+" {
  capabilities = ["delete"]
}
# Sign the Istio intermediate (root_mount/root/sign-intermediate).
path "pki/root/sign-intermediate" {
  capabilities = ["update"]
}
# Only with istio_vault_ca_root_pem_bundle (import an existing root instead of generating one):
# path "pki/issuers/import/bundle" {
#   capabilities = ["update"]
# }
# path "pki/issuers/import/cert" {
#   capabilities = ["update"]
# }

# --- Istio intermediate CA (istio_vault_ca_intermediate_mount: istioca) -----------------------------------
path "sys/mounts/istioca" {
  capabilities = ["update"]
}
path "sys/mounts/istioca/tune" {
  capabilities = ["read", "update"]
}
# A new key and CSR (exported: the key goes to KV v2), or a CSR from the stored key when a run resumes.
path "istioca/intermediate/generate/exported" {
  capabilities = ["update"]
}
path "istioca/intermediate/generate/existing" {
  capabilities = ["update"]
}
path "istioca/intermediate/set-signed" {
  capabilities = ["update"]
}
path "istioca/config/issuers" {
  capabilities = ["read", "update"]
}
path "istioca/issuer/+" {
  capabilities = ["read"]
}
path "istioca/issuers" {
  capabilities = ["list"]
}
# Repair a missing issuing chain (the root's certificate imported into the intermediate mount).
path "istioca/issuers/import/cert" {
  capabilities = ["update"]
}
# Resume after Vault lost the key: list the mount's keys, import the key stored in KV.
path "istioca/keys" {
  capabilities = ["list"]
}
path "istioca/keys/import" {
  capabilities = ["update"]
}
# Two runs racing: the loser deletes the key it generated.
path "istioca/key/+" {
  capabilities = ["delete"]
}

# --- The intermediate's key in KV v2 (istio_vault_ca_kv_mount: secret, istio_vault_ca_kv_path: istioca) ----
# Enabling the KV v2 engine is needed only where it does not exist yet (a dev server has secret/).
path "sys/mounts/secret" {
  capabilities = ["update"]
}
# create: the first version; update: the next one (rotation, check-and-set); read: compare and resume.
path "secret/data/istioca" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/istioca" {
  capabilities = ["read"]
}

# --- The trust bundle root-cert.pem renders, and the root rotation's record (istio_vault_ca_trust_bundle_path:
# <root mount>-trust, in istio_vault_ca_kv_mount) ---------------------------------------------------------------
path "secret/data/pki-trust" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/pki-trust" {
  capabilities = ["read"]
}
# Only for the root rotation (playbook meshpki.vault_ca.rotate_root): the new root, a second issuer of the root
# mount (the default issuer moves with pki/config/issuers above).
# path "pki/root/rotate/internal" {
#   capabilities = ["update"]
# }
# ... or, with istio_vault_ca_root_rotation_pem_bundle, the new root imported and named (pki/issuer/<id>):
# path "pki/issuers/import/bundle" {
#   capabilities = ["update"]
# }
# path "pki/issuer/+" {
#   capabilities = ["read", "update", "delete"]
# }

# --- istiod's policy (istio_vault_ca_policy_name: istioca) ------------------------------------------------
path "sys/policies/acl/istioca" {
  capabilities = ["read", "update"]
}

# The verify step checks what istiod's token will be granted: the policy above merged with Vault's "default".
path "sys/policies/acl/default" {
  capabilities = ["read"]
}

# --- Kubernetes auth for istiod (istio_vault_ca_k8s_auth_mount: kubernetes, istio_vault_ca_k8s_role: istiod) -
# Enabling an auth method needs sudo (Vault and OpenBao).
path "sys/auth/kubernetes" {
  capabilities = ["update", "sudo"]
}
path "auth/kubernetes/config" {
  capabilities = ["create", "read", "update"]
}
path "auth/kubernetes/role/istiod" {
  capabilities = ["create", "read", "update"]
}

# --- Verification (istio_vault_ca_verify: true) ---------------------------------------------------------
# istio_ca_verify reads the bundle with a short-lived child token holding only istiod's policy. A token may
# create a child with a policy it does not hold itself only with sudo on auth/token/create ("child policies
# must be subset of parent" otherwise). sudo there alone would let this token mint a token with ANY policy
# but root, and orphan tokens: allowed_parameters pins "policies" to exactly ["istioca"] (a list of one list:
# the request's JSON list must equal it) and allows no other parameter than the four the module sends, so
# no_parent, id, period, type, meta ... are refused.
# Without sudo: give the Ansible token the policy istioca too (policies = this one, istioca, default); then
# "update" alone is enough and the allowed_parameters below can stay.
path "auth/token/create" {
  capabilities = ["update", "sudo"]
  allowed_parameters = {
    "policies"         = [["istioca"]]
    "ttl"              = []
    "explicit_max_ttl" = []
    "num_uses"         = []
    "renewable"        = []
    "display_name"     = []
  }
}

# --- This token itself (also in Vault's "default" policy, listed so the file works with -no-default-policy) -
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
# Revoking the run's own login token (approle, userpass, kubernetes, cert) when the run ends.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# --- Optional: the file audit device (istio_vault_ca_audit_file_path set; Vault only - OpenBao declares audit
# devices in its configuration file and refuses to enable them through the API). Both need sudo.
# path "sys/audit" {
#   capabilities = ["read", "sudo"]
# }
# path "sys/audit/file" {
#   capabilities = ["update", "sudo"]
# }
