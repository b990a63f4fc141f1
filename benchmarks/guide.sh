#!/usr/bin/env bash
# The TSB "Istio CA" guide's commands, as an operator would paste them into a script: the by-hand
# baseline of benchmarks/bench.py. Command for command the guide, with three unavoidable changes:
#   - `vault` is the OpenBao CLI (`bao`, same commands and API), through the function below;
#   - "copy the CSR / the key into a local file" is done with jq (or python3) on the JSON output of the
#     one generate/exported call, instead of by hand;
#   - the guide's first command, `vault audit enable file ...`, is left out: the benchmark's server
#     declares its audit device in its config file (OpenBao refuses to enable one through the API),
#     and the collection's role skips it too unless istio_vault_ca_audit_file_path is set.
# Kubernetes side: Vault does not contact the cluster when its config is written, so placeholders do
# (K8S_HOST, K8S_CA_FILE, REVIEWER_JWT_FILE); the ControlPlane is written to a manifest file (MANIFEST).
#
# Environment: BAO_ADDR/VAULT_ADDR and BAO_TOKEN/VAULT_TOKEN, K8S_HOST, K8S_CA_FILE, REVIEWER_JWT_FILE,
# MANIFEST. KEEP_GOING=1 runs every command even after one failed (to see what a re-run does beyond the
# first error); otherwise the script stops at the first failing command, as `set -e` does.
#
# Like the guide, it writes the intermediate's private key to a local file (istioca.key): here into a
# private temporary directory removed at exit.

if [ "${KEEP_GOING:-0}" = 1 ]; then
  set +e -o pipefail
  failures=0
  trap 'failures=$((failures + 1))' ERR
else
  set -eo pipefail
  trap 'echo "guide.sh: stopped at the first failure" >&2' ERR
fi

# The failing command is named with its values cut at "=" (the reviewer JWT is one of them).
vault() {
  command "${VAULT_CLI:-bao}" "$@" && return 0
  local rc=$? words=() arg
  for arg in "$@"; do words+=("${arg%%=*}"); done
  echo "guide.sh: FAILED (exit $rc): vault ${words[*]}" >&2
  return $rc
}
field() {  # field NAME < json  - one field of `vault write -format=json` output
  if command -v jq >/dev/null 2>&1; then jq -r ".data[\"$1\"]"; else
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"; fi
}

: "${K8S_HOST:?}" "${K8S_CA_FILE:?}" "${REVIEWER_JWT_FILE:?}" "${MANIFEST:?}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

### Create a CA Certificate

# Enable PKI secret back-end
vault secrets enable pki

# Update PKI lease to 1 year
vault secrets tune -max-lease-ttl=8760h pki

# Create a Self Signed CA
vault write pki/root/generate/internal common_name=tetrate.io ttl=8760h >/dev/null

### Intermediate CA for Istio

# Enable PKI in a new path for intermediate CA
vault secrets enable --path istioca pki

# Update lease time to 5 years
vault secrets tune -max-lease-ttl=43800h istioca

# Create Intermediate CA cert and Key (then: copy the CSR into istioca.csr, the key into istioca.key)
(umask 077; vault write -format=json istioca/intermediate/generate/exported \
  common_name="tetrate.io Intermediate Authority" ttl=43800h >generated.json)
field csr <generated.json >istioca.csr
(umask 077; field private_key <generated.json >istioca.key)
rm -f generated.json

# Now we can use the Vault CA to sign the CSR (then: copy the certificate into istioca.crt)
vault write -format=json pki/root/sign-intermediate csr=@istioca.csr format=pem_bundle ttl=43800h \
  | field certificate >istioca.crt

### Adding Intermediate CA Certificate to Vault

vault write istioca/intermediate/set-signed certificate=@istioca.crt >/dev/null

vault kv put secret/istioca ca-key.pem=@istioca.key >/dev/null

### Configure the Vault-Injector

vault auth enable kubernetes
vault write auth/kubernetes/config \
  token_reviewer_jwt="$(cat "$REVIEWER_JWT_FILE")" \
  kubernetes_host="$K8S_HOST" \
  kubernetes_ca_cert=@"$K8S_CA_FILE"

vault write auth/kubernetes/role/istiod \
  bound_service_account_names=istiod-service-account \
  bound_service_account_namespaces=istio-system \
  policies=istioca \
  period=600s

cat >policy.hcl <<EOF
path "secret/data/istioca" {
capabilities = ["read", "list"]
}
path "istioca/cert/*" {
capabilities = ["read", "list"]
}
path "pki/cert/ca" {
capabilities = ["read", "list"]
}
EOF

vault policy write istioca policy.hcl

### Configure TSB ControlPlane CRD (the manifest kept in Git)

cat >"$MANIFEST" <<'EOF'
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: registry.example.com/tetrate
  components:
    istio:
      kubeSpec:
        deployment:
          env:
            - name: ROOT_CA_DIR
              value: /etc/cacerts-vault
        podAnnotations:
          vault.hashicorp.com/agent-inject: "true"
          vault.hashicorp.com/agent-inject-secret-ca-cert.pem: istioca/cert/ca
          vault.hashicorp.com/agent-inject-secret-ca-key.pem: secret/data/istioca
          vault.hashicorp.com/agent-inject-secret-cert-chain.pem: istioca/cert/ca_chain
          vault.hashicorp.com/agent-inject-secret-root-cert.pem: pki/cert/ca
          vault.hashicorp.com/agent-inject-template-ca-cert.pem: |
            {{- with secret "istioca/cert/ca" -}}
            {{ .Data.certificate }}
            {{- end }}
          vault.hashicorp.com/agent-inject-template-ca-key.pem: |
            {{- with secret "secret/data/istioca" -}}
            {{ index .Data.data "ca-key.pem" }}
            {{- end }}
          vault.hashicorp.com/agent-inject-template-cert-chain.pem: |
            {{- with secret "istioca/cert/ca_chain" -}}
            {{ .Data.certificate }}
            {{- end }}
          vault.hashicorp.com/agent-inject-template-root-cert.pem: |
            {{- with secret "pki/cert/ca" -}}
            {{ "" | or ( .Data.certificate ) }}
            {{- end }}
          vault.hashicorp.com/role: istiod
          vault.hashicorp.com/secret-volume-path: /etc/cacerts-vault
EOF

if [ "${KEEP_GOING:-0}" = 1 ] && [ "$failures" -gt 0 ]; then
  echo "guide.sh: $failures command(s) failed" >&2
  exit 1
fi
