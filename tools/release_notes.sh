#!/usr/bin/env bash
# Generate the release notes - changelogs/changelog.yaml and CHANGELOG.md - for one version from the
# changelog fragments, without consuming the fragments. Safe to re-run as fragments are added.
#
#   tools/release_notes.sh            # the version in galaxy.yml
#   tools/release_notes.sh 0.2.0
#   RELEASE_DATE=2026-01-15 tools/release_notes.sh
#
# How: `antsibull-changelog release` runs in a throw-away copy of the collection (it deletes the
# fragments it consumes when keep_fragments is false, and writes a plugin cache). In that copy the
# entry for VERSION, if changelog.yaml already has one, is dropped first, so the release is built
# again from every fragment not already listed under an earlier release; the copy's config keeps
# fragments and skips known ones. Only changelogs/changelog.yaml and CHANGELOG.md come back.
# The release date of an existing entry is kept unless RELEASE_DATE is given.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$REPO/.venv/bin}"
PY="$BIN/python"
for tool in antsibull-changelog ansible-doc; do
  [ -x "$BIN/$tool" ] || { echo "release_notes: $BIN/$tool is missing (pip install -r requirements-test.txt)" >&2; exit 2; }
done

VERSION="${1:-$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$REPO/galaxy.yml")}"

"$BIN/antsibull-changelog" lint

WORK="$(mktemp -d "${TMPDIR:-/tmp}/meshpki-release-notes.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
COPY="$WORK/ansible_collections/meshpki/vault_ca"
mkdir -p "$COPY"

# The collection as git sees it: tracked files plus new ones that are not ignored (so fragments and
# modules not committed yet count), minus deleted ones.
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) | while IFS= read -r -d '' f; do
  [ -e "$REPO/$f" ] && { mkdir -p "$COPY/$(dirname "$f")"; cp -p "$REPO/$f" "$COPY/$f"; }
done

"$PY" - "$COPY" "$VERSION" "${RELEASE_DATE:-}" >"$WORK/date" <<'PY'
import os
import sys

import yaml

copy, version, date = sys.argv[1], sys.argv[2], sys.argv[3]
config_path = os.path.join(copy, "changelogs", "config.yaml")
with open(config_path) as f:
    config = yaml.safe_load(f)
config["keep_fragments"] = True            # nothing is deleted, even in the copy
config["prevent_known_fragments"] = True   # fragments of earlier releases stay there
with open(config_path, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)

changes_path = os.path.join(copy, "changelogs", config.get("changes_file", "changelog.yaml"))
if os.path.exists(changes_path):
    with open(changes_path) as f:
        changes = yaml.safe_load(f) or {}
    release = (changes.get("releases") or {}).pop(version, None)
    if release and not date:
        date = str(release.get("release_date", ""))
    with open(changes_path, "w") as f:
        yaml.safe_dump(changes, f, sort_keys=False)
print(date)
PY
DATE="$(cat "$WORK/date")"
DATE_ARGS=()
[ -n "$DATE" ] && DATE_ARGS=(--date "$DATE")

(cd "$COPY" && ANSIBLE_COLLECTIONS_PATH="$WORK" PATH="$BIN:$PATH" \
  "$BIN/antsibull-changelog" release --version "$VERSION" "${DATE_ARGS[@]}" --reload-plugins)

cp "$COPY/changelogs/changelog.yaml" "$REPO/changelogs/changelog.yaml"
cp "$COPY/CHANGELOG.md" "$REPO/CHANGELOG.md"
"$BIN/antsibull-changelog" lint-changelog-yaml "$REPO/changelogs/changelog.yaml"
echo "release_notes: changelogs/changelog.yaml and CHANGELOG.md for $VERSION ($(grep -c '' "$REPO/CHANGELOG.md") lines);" \
     "fragments left in place: $(find "$REPO/changelogs/fragments" -name '*.yml' -o -name '*.yaml' | wc -l)"
