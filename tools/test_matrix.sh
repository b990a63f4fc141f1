#!/usr/bin/env bash
# Run the unit and integration tests with every supported ansible-core, each in its own virtualenv.
#
#   tools/test_matrix.sh                 # the whole matrix
#   tools/test_matrix.sh 2.16 2.19       # some entries
#   MATRIX_RESUME=1 tools/test_matrix.sh # skip entries that already passed on this very tree
#   MATRIX_TIMEOUT=1800 MATRIX_PYTEST_ARGS="-x" tools/test_matrix.sh
#   MATRIX_EXTRA_PIP="some-tool==1.2" tools/test_matrix.sh   # also install these (e.g. a tool not pinned yet)
#
# Entries: ansible-core 2.16, 2.17, 2.18, 2.19 on Python 3.11 and 2.20 on Python 3.12 (2.20 needs
# Python >= 3.12 on the controller; 2.16 supports 3.10-3.12). Each runs in .venv-matrix-<version>
# (git-ignored), created once and reused while its requirements are unchanged; the newest patch
# release of each ansible-core series is installed. Each entry is bounded by MATRIX_TIMEOUT seconds.
# Results go to tests/output/matrix/<version>.txt; a table is printed at the end. Exit status is 0
# only if every requested entry passed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
RESULTS="$REPO/tests/output/matrix"
mkdir -p "$RESULTS"
TIMEOUT="${MATRIX_TIMEOUT:-1500}"
PYTEST_ARGS="${MATRIX_PYTEST_ARGS:-}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"

# version:python
MATRIX=("2.16:3.11" "2.17:3.11" "2.18:3.11" "2.19:3.11" "2.20:3.12")

find_python() {  # an interpreter for X.Y: pyenv's install first (its shims may not expose it), then PATH
  local want="$1" candidate
  for candidate in "$PYENV_ROOT"/versions/"$want".*/bin/python"$want" "$(command -v "python$want" 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$want'.split('.')))" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Test requirements of the matrix: requirements-test.txt without ansible-core (each entry has its
# own) and without tools that are not needed by the tests and pin a recent ansible-core themselves.
matrix_requirements() {
  grep -vE '^\s*(#|-r|$)' requirements-test.txt \
    | grep -viE '^(ansible-core|ansible-lint|ansible-compat|molecule|ruff|antsibull-[a-z-]+|sphinx[a-z-]*)\b'
}

tree_id() {  # identifies the tested tree: HEAD plus uncommitted changes (tracked and new files)
  { git rev-parse HEAD; git diff HEAD; git ls-files --others --exclude-standard -z | xargs -0 -r sha256sum; } 2>/dev/null \
    | sha256sum | cut -c1-16
}

requested=("$@")
selected=()
for entry in "${MATRIX[@]}"; do
  core="${entry%%:*}"
  if [ ${#requested[@]} -eq 0 ] || printf '%s\n' "${requested[@]}" | grep -qx "$core"; then
    selected+=("$entry")
  fi
done
if [ "${#selected[@]}" -eq 0 ]; then
  echo "test_matrix: nothing selected; entries are: ${MATRIX[*]%%:*}" >&2
  exit 2
fi

TREE="$(tree_id)"
for entry in "${selected[@]}"; do
  core="${entry%%:*}"
  py="${entry##*:}"
  venv="$REPO/.venv-matrix-$core"
  result="$RESULTS/$core.txt"
  if [ "${MATRIX_RESUME:-0}" = "1" ] && [ -f "$result" ] && grep -q "^tree=$TREE$" "$result" && grep -q "^status=passed$" "$result"; then
    echo "=== ansible-core $core: passed before on this tree, skipped (MATRIX_RESUME=1)"
    continue
  fi
  start=$(date +%s)
  echo "=== ansible-core $core on Python $py"
  python="$(find_python "$py")" || {
    printf 'status=no-python\ncore=%s\npython=%s\nsummary=Python %s not found\nseconds=0\ntree=%s\n' \
      "$core" "$py" "$py" "$TREE" >"$result"
    echo "    Python $py not found (pyenv install $py, or put python$py on PATH)"
    continue
  }
  next_minor="${core%.*}.$(( ${core#*.} + 1 ))"
  extra="${MATRIX_EXTRA_PIP:-}"  # word-split on purpose: several requirement specs
  reqs="$(matrix_requirements; cat requirements.txt; echo "ansible-core>=$core.0,<$next_minor.0 $extra"; "$python" --version 2>&1)"
  stamp="$venv/.matrix-installed"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(echo "$reqs" | sha256sum)" ]; then
    echo "    creating $venv"
    rm -rf "$venv"
    if ! { "$python" -m venv "$venv" \
           && "$venv/bin/python" -m pip install --quiet --upgrade pip \
           && "$venv/bin/python" -m pip install --quiet -r requirements.txt -r <(matrix_requirements) \
                "ansible-core>=$core.0,<$next_minor.0" $extra; } >"$RESULTS/$core.install.log" 2>&1; then
      printf 'status=install-failed\ncore=%s\npython=%s\nsummary=see %s\nseconds=%s\ntree=%s\n' "$core" "$py" \
        "tests/output/matrix/$core.install.log" "$(( $(date +%s) - start ))" "$TREE" >"$result"
      tail -5 "$RESULTS/$core.install.log"
      continue
    fi
    echo "$reqs" | sha256sum >"$stamp"
  fi
  exact="$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')"
  pyexact="$("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
  log="$RESULTS/$core.log"
  # shellcheck disable=SC2086
  timeout --kill-after=30 "$TIMEOUT" "$venv/bin/python" -m pytest tests/unit tests/integration -q -n 2 \
    -p no:cacheprovider $PYTEST_ARGS >"$log" 2>&1
  rc=$?
  seconds=$(( $(date +%s) - start ))
  summary="$(grep -E '(passed|failed|error|no tests ran)' "$log" | grep -E ' in [0-9.]+s' | tail -1 | sed -E 's/=+//g; s/^ +| +$//g')"
  if [ "$rc" -eq 0 ]; then status=passed; elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=timeout; else status=failed; fi
  printf 'status=%s\ncore=%s\npython=%s\nsummary=%s\nseconds=%s\ntree=%s\n' "$status" "$exact" "$pyexact" \
    "${summary:-no summary (see tests/output/matrix/$core.log)}" "$seconds" "$TREE" >"$result"
  echo "    $status: ${summary:-see $log} (${seconds}s)"
  [ "$status" = passed ] || grep -E '^(FAILED|ERROR) ' "$log" | head -10 | sed 's/^/    /'
done

echo
printf '%-14s %-16s %-8s %-14s %7s  %s\n' "ansible-core" "installed" "python" "result" "time" "tests"
printf '%-14s %-16s %-8s %-14s %7s  %s\n' "------------" "---------" "------" "------" "----" "-----"
overall=0
for entry in "${selected[@]}"; do
  core="${entry%%:*}"
  result="$RESULTS/$core.txt"
  if [ ! -f "$result" ]; then
    printf '%-14s %-16s %-8s %-14s %7s  %s\n' "$core" "-" "${entry##*:}" "not run" "-" "-"
    overall=1
    continue
  fi
  get() { sed -n "s/^$1=//p" "$result"; }
  stale=""
  [ "$(get tree)" = "$TREE" ] || stale=" (older tree)"
  printf '%-14s %-16s %-8s %-14s %6ss  %s\n' "$core" "$(get core)" "$(get python)" "$(get status)$stale" \
    "$(get seconds)" "$(get summary)"
  [ "$(get status)" = passed ] && [ -z "$stale" ] || overall=1
done
exit "$overall"
