#!/usr/bin/env bash
# Build the collection's HTML docs site with antsibull-docs and Sphinx.
#
#   tools/build_docs.sh            # -> .docs-build/html/index.html
#   DOCS_BUILD_DIR=/tmp/site tools/build_docs.sh
#   DOCS_STRICT=0 tools/build_docs.sh   # keep going on Sphinx warnings (default: warnings are errors)
#
# What it documents is whatever the collection holds when it runs: every module, filter and role
# (with its meta/argument_specs.yml), docs/docsite/extra-docs.yml pages, links.yml, and
# changelogs/changelog.yaml. Nothing is listed here by hand.
#
# Works offline: Sphinx's intersphinx would fetch inventories of docs.ansible.com and docs.python.org;
# instead a small local inventory maps the few Ansible documentation labels the generated pages
# refer to onto their docs.ansible.com addresses, so those links still work in the built site.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$REPO/.venv/bin}"
OUT="${DOCS_BUILD_DIR:-$REPO/.docs-build}"
STRICT="${DOCS_STRICT:-1}"
COLLECTIONS="$REPO/.collections"
LINK="$COLLECTIONS/ansible_collections/meshpki/vault_ca"

for tool in antsibull-docs sphinx-build ansible-doc; do
  if [ ! -x "$BIN/$tool" ]; then
    echo "build_docs: $BIN/$tool is missing; install the pinned tools: $BIN/pip install -r requirements-test.txt" >&2
    exit 2
  fi
done

# The collection must be found as ansible_collections/meshpki/vault_ca (the same link tests use).
if [ ! -e "$LINK" ]; then
  mkdir -p "$(dirname "$LINK")"
  ln -sfn "$REPO" "$LINK"
fi

export PATH="$BIN:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS"
export ANSIBLE_NOCOLOR=1

SRC="$OUT/src"
# Strict (the default, for CI): a plugin whose documentation does not parse or validate fails the
# build, and so does any Sphinx warning. Non-strict renders error pages and keeps going.
FAIL_ON_ERROR="--fail-on-error"
[ "$STRICT" = "1" ] || FAIL_ON_ERROR=""
rm -rf "$SRC" "$OUT/html"
mkdir -p "$SRC"

VERSION="$("$BIN/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$REPO/galaxy.yml")"

antsibull-docs sphinx-init \
  --use-current \
  --dest-dir "$SRC" \
  $FAIL_ON_ERROR \
  --project "meshpki.vault_ca" \
  --copyright "meshpki.vault_ca contributors" \
  --title "meshpki.vault_ca - Vault as the CA of Istio" \
  --html-short-title "meshpki.vault_ca $VERSION" \
  --squash-hierarchy \
  --no-add-antsibull-docs-version \
  meshpki.vault_ca >"$OUT/sphinx-init.log"

# The collection page links to where the collection lives, not to a Galaxy page it does not have yet.
"$BIN/python" - "$SRC/antsibull-docs.cfg" <<'PY'
import re
import sys

path = sys.argv[1]
with open(path) as f:
    cfg = f.read()
cfg, count = re.subn(r'^collection_url = \{\n.*?\n\}\n',
                     'collection_url = {\n  meshpki.vault_ca = "https://github.com/meshpki/vault_ca"\n'
                     '  * = "https://galaxy.ansible.com/ui/repo/published/{namespace}/{name}/"\n}\n',
                     cfg, flags=re.S | re.M)
assert count == 1, "antsibull-docs.cfg changed; update tools/build_docs.sh"
with open(path, "w") as f:
    f.write(cfg)
PY

# Offline intersphinx: one local inventory for the Ansible documentation labels used by the pages
# antsibull-docs generates, pointing at the real site.
"$BIN/python" - "$SRC/ansible_devel.inv" "$REPO/docs/docsite/intersphinx-ansible.yml" <<'PY'
import json
import subprocess
import sys
import zlib

import yaml

out, source = sys.argv[1], sys.argv[2]
with open(source) as f:
    labels = yaml.safe_load(f)["labels"]
# Every ansible.builtin plugin of the installed ansible-core, under the label antsibull-docs uses.
for kind in ("module", "filter", "test", "lookup", "callback", "connection", "become", "inventory"):
    listed = json.loads(subprocess.run(["ansible-doc", "-t", kind, "--list", "--json", "ansible.builtin"],
                                       capture_output=True, text=True, check=True).stdout)
    for fqcn in listed:
        name = fqcn.split(".")[-1]
        label = "ansible_collections.%s_%s" % (fqcn, kind)
        labels.setdefault(label, {
            "uri": "collections/ansible/builtin/%s_%s.html#%s" % (name, kind, label.replace(".", "-").replace("_", "-")),
            "title": "%s %s" % (fqcn, kind)})
lines = []
for name, entry in sorted(labels.items()):
    lines.append("%s std:label -1 %s %s" % (name, entry["uri"], entry["title"]))
header = ("# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
          "# The remainder of this file is compressed using zlib.\n")
with open(out, "wb") as f:
    f.write(header.encode())
    f.write(zlib.compress(("\n".join(lines) + "\n").encode()))
PY

cat >>"$SRC/conf.py" <<PY

# --- added by tools/build_docs.sh: build offline, link to the real Ansible docs ---
intersphinx_mapping = {
    'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/', '$SRC/ansible_devel.inv'),
}
# The Ansible theme's top bar links to Ansible's own blog and forum, and its logo to '/': point
# them at this collection instead; no Ansible community side navigation, no ads.
html_theme_options = {
    'topbar_links': {
        'Source': 'https://github.com/meshpki/vault_ca',
        'Issues': 'https://github.com/meshpki/vault_ca/issues',
        'The TSB guide': 'https://docs.tetrate.io/service-bridge/operations/vault/istio-ca',
    },
    'documentation_home_url': 'https://github.com/meshpki/vault_ca',
    'show_extranav': False,
    'show_rtd_ethical_ads': False,
    'collapse_navigation': False,
    'navigation_depth': 3,
}
# Long module names (tsb_controlplane_annotations) wrap in the sidebar instead of running under the page.
html_static_path = ['_static_meshpki']
html_css_files = ['meshpki.css']
PY
mkdir -p "$SRC/_static_meshpki"
printf '.wy-menu-vertical a { overflow-wrap: anywhere; }\n' >"$SRC/_static_meshpki/meshpki.css"

# antsibull-docs titles pages with str.title(): "Meshpki.Vault_Ca", "Meshpki.Vault_Ca Release Notes".
# Give the collection its own spelling (and the index page a title that says what it is), between
# antsibull-docs writing the RST and Sphinx reading it.
cat >"$SRC/fix_titles.py" <<'PY'
import glob
import re

INDEX_TITLE = "meshpki.vault_ca - Vault or OpenBao as the CA of Istio"
for path in glob.glob("rst/**/*.rst", recursive=True):
    with open(path) as f:
        text = f.read()
    fixed = re.sub(r"^Meshpki\.Vault_Ca\n=+\n", INDEX_TITLE + "\n" + "=" * len(INDEX_TITLE) + "\n", text,
                   count=1, flags=re.M) if path == "rst/index.rst" else text
    # Same length: underlines stay valid. The changelog page escapes the underscore.
    fixed = fixed.replace("Meshpki.Vault_Ca", "meshpki.vault_ca").replace("Meshpki.Vault\\_Ca", "meshpki.vault\\_ca")
    if fixed != text:
        with open(path, "w") as f:
            f.write(fixed)
PY
"$BIN/python" - "$SRC/build.sh" "$BIN/python" <<'PY'
import sys

path, python = sys.argv[1], sys.argv[2]
with open(path) as f:
    script = f.read()
marker = "# Build Sphinx site"
assert marker in script, "antsibull-docs build.sh changed; update tools/build_docs.sh"
with open(path, "w") as f:
    f.write(script.replace(marker, '"%s" fix_titles.py\n\n%s' % (python, marker), 1))
PY

if [ "$STRICT" != "1" ]; then
  sed -i 's/ -W --keep-going/ --keep-going/' "$SRC/build.sh"
fi

echo "build_docs: antsibull-docs + sphinx-build in $SRC (log: $OUT/build.log)"
if ! (cd "$SRC" && ./build.sh) >"$OUT/build.log" 2>&1; then
  grep -E "WARNING|ERROR|Error" "$OUT/build.log" | sort -u >&2 || true
  echo "build_docs: FAILED - see $OUT/build.log" >&2
  exit 1
fi
grep -E "WARNING" "$OUT/build.log" | sort -u >&2 || true

ln -sfn "$SRC/build/html" "$OUT/html"
PAGES="$(find "$OUT/html/" -name '*.html' | wc -l)"
echo "build_docs: $PAGES pages - open $OUT/html/index.html"
