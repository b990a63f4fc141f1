#!/usr/bin/env bash
# Lint the collection's documentation the way antsibull-docs builds it:
#  - every module, filter and role documentation (schema, markup, references, the RST it becomes),
#  - docs/docsite/links.yml, extra-docs.yml, config.yml and every page in docs/docsite/rst/,
#    including the references in those pages to plugins and roles of this collection.
# The collection is linted through its ansible_collections/meshpki/vault_ca link (.collections/).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$REPO/.venv/bin}"
COLLECTIONS="$REPO/.collections"
LINK="$COLLECTIONS/ansible_collections/meshpki/vault_ca"
[ -x "$BIN/antsibull-docs" ] || { echo "docs_lint: $BIN/antsibull-docs is missing (pip install -r requirements-test.txt)" >&2; exit 2; }
if [ ! -e "$LINK" ]; then
  mkdir -p "$(dirname "$LINK")"
  ln -sfn "$REPO" "$LINK"
fi

export PATH="$BIN:$PATH" ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS" ANSIBLE_NOCOLOR=1
# References to this collection and to ansible.builtin are validated; references to other
# collections (community.hashi_vault, kubernetes.core in seealso) cannot be checked offline.
status=0
antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs --validate-collection-refs dependent \
  "$LINK" || status=1

# The examples on the guide pages must be runnable: every task of a YAML code block that calls a
# module of this collection may only use options that module documents (with aliases), and every
# istio_vault_ca_* variable given to a role must be in the role's argument specs.
"$BIN/python" - "$REPO" <<'PY' || status=1
import glob
import json
import os
import re
import subprocess
import sys

import yaml

repo = sys.argv[1]
fqcn = "meshpki.vault_ca."
block_re = re.compile(r"^( *)\.\. code-block:: yaml(?:\+jinja)?\s*\n((?:\1 {3}.*\n|\s*\n)+)", re.M)
tasks = []  # (page, line, task)


def walk(node, page, line):
    if isinstance(node, list):
        for item in node:
            walk(item, page, line)
    elif isinstance(node, dict):
        if any(isinstance(k, str) and k.startswith(fqcn) for k in node):
            tasks.append((page, line, node))
        for key in ("tasks", "block", "rescue", "always", "roles", "pre_tasks", "post_tasks"):
            walk(node.get(key), page, line)
        if "role" in node or "ansible.builtin.include_role" in node or "ansible.builtin.import_role" in node:
            tasks.append((page, line, node))


for page in sorted(glob.glob(os.path.join(repo, "docs", "docsite", "rst", "*.rst"))):
    text = open(page).read()
    for match in block_re.finditer(text):
        indent = len(match.group(1)) + 3
        body = "\n".join(line[indent:] for line in match.group(2).splitlines())
        line = text[:match.start()].count("\n") + 1
        try:
            data = yaml.safe_load(body)
        except yaml.YAMLError as e:
            sys.exit("docs_lint: %s:%d: a YAML code block does not parse: %s" % (os.path.relpath(page, repo), line, e))
        walk(data, os.path.relpath(page, repo), line)

modules = sorted({k for _p, _l, t in tasks for k in t if isinstance(k, str) and k.startswith(fqcn)})


def ansible_doc(names):
    out = subprocess.run(["ansible-doc", "-t", "module", "--json"] + names, capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


docs = ansible_doc(modules) if modules else {}
if docs is None:  # one module's documentation is broken: look the others up one by one
    docs = {}
    for name in modules:
        docs.update(ansible_doc([name]) or {})
specs = {}
for path in glob.glob(os.path.join(repo, "roles", "*", "meta", "argument_specs.yml")):
    role = os.path.basename(os.path.dirname(os.path.dirname(path)))
    specs[fqcn + role] = set((yaml.safe_load(open(path))["argument_specs"]["main"].get("options") or {}))

errors = []
checked = 0
for page, line, task in tasks:
    for key, args in task.items():
        if not (isinstance(key, str) and key.startswith(fqcn)):
            continue
        if key not in docs:
            errors.append("%s:%d: %s is not a module of the collection (or its documentation does not load)"
                          % (page, line, key))
            continue
        options = docs[key]["doc"].get("options") or {}
        known = set(options) | {a for o in options.values() for a in (o.get("aliases") or [])}
        for arg in sorted(set(args or {}) - known):
            errors.append("%s:%d: %s has no option %r" % (page, line, key, arg))
        checked += 1
    role = task.get("role") or (task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
                                or {}).get("name")
    if role:
        if role not in specs:
            errors.append("%s:%d: role %s does not exist or has no meta/argument_specs.yml" % (page, line, role))
            continue
        for var in sorted(set(task.get("vars") or {}) - specs[role]):
            errors.append("%s:%d: role %s has no variable %r" % (page, line, role, var))
        checked += 1
if errors:
    sys.exit("docs_lint: examples on the docs pages do not match the collection:\n  " + "\n  ".join(errors))
print("docs_lint: %d example tasks on the docs pages match their module or role" % checked)
PY
if [ $status -ne 0 ]; then
  echo "docs_lint: FAILED" >&2
  exit 1
fi
echo "docs_lint: clean"
