"""Mutation testing of module_utils with mutmut 3, unit tests only (`make mutation`; not part of make test or CI).

    python tools/mutation.py                                  # every file in MUTATE below
    python tools/mutation.py --files plugins/module_utils/vault/durations.py   # one file (or a glob; comma-separated)
    MUTATION_FILES=plugins/module_utils/pki/*.py python tools/mutation.py  # the same as an environment variable
    python tools/mutation.py --report-only                    # the report again, from the last run's .mutation/
    python tools/mutation.py --count-messages                 # score message-only mutants like any other
    python tools/mutation.py --files F --resume-from tests/output/mutation-results.json   # after adding tests:
                                                # only the mutants that run left alive are tested again

A resumed run is what makes a second measurement affordable on a small machine: tests only added can kill a
mutant but never revive one, so a mutant killed before stays killed as long as its file is byte-identical (the
results file records each file's SHA-256; a changed file is refused and must be run in full).

The files to mutate are the one list MUTATE below: paths relative to the collection root, or globs
(``plugins/module_utils/pki/*.py``); edit it when files move. Only ``tests/unit`` runs against the
mutants, one mutant at a time (--max-children, default 1, or MUTATION_JOBS).

Layout. The tests import the code as ``ansible_collections.meshpki.vault_ca.plugins...``, and mutmut names a
mutant after the module path of its file relative to where mutmut runs; the two must be the same or every
mutant would survive unnoticed (mutmut's trampoline only switches a function when the module names match). So
mutmut does not run in the repository root: the tracked and new (not ignored) files are copied into
``.mutation/ansible_collections/meshpki/vault_ca/`` (git-ignored, like make sanity's ``.sanity/``), mutmut
runs in ``.mutation/`` and makes its copy with the mutants in ``.mutation/mutants/ansible_collections/...``.
tests/conftest.py there links ``.collections/ansible_collections/meshpki/vault_ca`` to that copy (it finds the
repository from its own location), so the tests import the mutated code. mutmut checks it before running
any mutant: its forced-fail run must fail a test through the mutated files' trampolines, and the stats run
must see calls under the same module names as the mutants. After a run, ``cd .mutation && ../.venv/bin/mutmut
show <name>`` (or ``results``, ``browse``) works as in any mutmut project.

Score, per file: killed / (mutants - message-only). Survived, timeout, suspicious (and segfault) and
"no tests" (no unit test calls the function) mutants all count as not killed; the table shows each apart,
and "Score, all counted" (killed / mutants, message-only ones included) for comparison.

Message-only mutants (excluded from the score, counted neither way, listed apart) - the rule: the mutant's
function differs from the original only in the values of str literals (the syntax trees are otherwise
equal), and every changed literal is text of a message, that is:

1. it is inside a message argument: the first positional argument of the exception call in
   ``raise SomeError(<message>, ...)``, or an argument listed in MESSAGE_ARGUMENTS below: the module's
   warnings (``<x>.warnings.append/extend``, ``<x>.warn``, ``<x>.deprecate``), ``fail_json/exit_json(msg=)``,
   the ``action=`` verb phrase the Vault client words its errors with ("cannot <action> <path>: ..."), the
   detail of a check in istio/bundle.py's report (what istio_ca_verify fails with), the message of a finding
   in istio/diagnose.py (what istio_ca_diagnose reports; the check's name and status are scored);
2. it is reached from there only through string building: ``+``, ``%`` (either side), tuples and lists,
   f-strings, ``str.format`` and ``str.join`` (receiver or arguments), ``a or "text"``, the two branches of
   ``a if c else b`` (not through a dict, an index, a comparison, another call: ``"%(k)s" % {"XXkXX": v}``
   fails with KeyError, ``info["XXserialXX"]`` too, ``a if mode == "XXgenerateXX" else b`` picks the wrong text);
3. if it is the left side of ``%``, its printf conversions are unchanged, and if ``.format`` is called on it,
   its fields are unchanged: mutmut's upper-casing turns ``%s`` into ``%S``, and that mutant raises
   "ValueError: unsupported format character" instead of the error meant - it is scored.

Everything else is scored, messages built from another value included (``None`` instead of the option
name, a dropped argument): such a message says the wrong thing, and a unit test can see that. A literal
reworded (``"XX...XX"``, other case) is what a test cannot sensibly pin without freezing the wording.

Writes tests/output/mutation-report.md (the table) and tests/output/mutation-survivors.txt (every mutant
not killed, with its file, line and mutmut's diff: survived first, then no tests, timeout/suspicious,
then the message-only ones), and prints the table. Exit status: 0, or mutmut's when it failed (no report).
"""

import argparse
import ast
import difflib
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import time

# The files to mutate: paths relative to the collection root, or globs. The one list to edit.
MUTATE = [
    "plugins/module_utils/vault/durations.py",
    "plugins/module_utils/vault/policy.py",
    "plugins/module_utils/istio/injector.py",
    "plugins/module_utils/istio/bundle.py",
    "plugins/module_utils/pki/x509.py",
    "plugins/module_utils/pki/request.py",
    "plugins/module_utils/pki/certs.py",
    "plugins/module_utils/pki/issuers.py",
    "plugins/module_utils/pki/root.py",
    "plugins/module_utils/pki/intermediate.py",
    "plugins/module_utils/pki/layout.py",
    "plugins/module_utils/pki/rotation.py",
    "plugins/module_utils/istio/verify.py",
    "plugins/module_utils/istio/manifest.py",
    "plugins/module_utils/istio/controlplane.py",
    "plugins/module_utils/istio/diagnose.py",
]
UNIT_TESTS = "tests/unit"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, ".mutation")
COLLECTION_PREFIX = "ansible_collections/meshpki/vault_ca"
STAGE = os.path.join(WORK, COLLECTION_PREFIX)
OUTPUT = os.path.join(REPO, "tests", "output")
REPORT = os.path.join(OUTPUT, "mutation-report.md")
SURVIVORS = os.path.join(OUTPUT, "mutation-survivors.txt")
RESULTS = os.path.join(OUTPUT, "mutation-results.json")
RUN_INFO = os.path.join(WORK, "run.json")


# --- which files -------------------------------------------------------------------------------------------

def repo_files():
    """Tracked and new (not ignored) files of the working tree, as make sanity copies them."""
    try:
        out = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit("mutation: needs a git checkout to know which files to copy (%s)" % e)
    paths = (os.path.join(REPO, p) for p in out.decode().split("\0") if p)
    # lexists: not the deleted ones; isdir: not a symlink to a directory (a linked .venv shows up as untracked)
    return sorted(os.path.relpath(p, REPO) for p in paths if os.path.lexists(p) and not os.path.isdir(p))


def select_files(patterns, files):
    """The .py files matching ``patterns`` (paths or globs relative to the collection root), in order."""
    chosen = []
    for pattern in patterns:
        pattern = pattern.strip().strip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        matches = [f for f in files if f.endswith(".py") and fnmatch.fnmatchcase(f, pattern)]
        if not matches:
            sys.exit("mutation: %r matches no tracked .py file (paths are relative to the collection root)" % pattern)
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


# --- the run -------------------------------------------------------------------------------------------------

def stage(files):
    """A fresh .mutation/ with a copy of the collection under ansible_collections/meshpki/vault_ca."""
    shutil.rmtree(WORK, ignore_errors=True)
    for rel in files:
        dest = os.path.join(STAGE, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), dest, follow_symlinks=False)


def write_config(targets):
    def lines(values):
        return "".join("\n    %s" % v for v in values)
    with open(os.path.join(WORK, "setup.cfg"), "w") as f:
        f.write("# Written by tools/mutation.py for this run; edit MUTATE there, not this file.\n"
                "[mutmut]\n"
                "source_paths = ansible_collections\n"
                "only_mutate =%s\n"
                "pytest_add_cli_args_test_selection =\n    %s/%s\n"
                "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n"
                "use_git_change_detection = false\n"
                % (lines("%s/%s" % (COLLECTION_PREFIX, t) for t in targets), COLLECTION_PREFIX, UNIT_TESTS))


def run_mutmut(max_children, names=()):
    mutmut = os.path.join(os.path.dirname(sys.executable), "mutmut")
    if not os.path.exists(mutmut):
        sys.exit("mutation: %s is missing: %s -m pip install -r requirements-mutation.txt" % (mutmut, sys.executable))
    env = dict(os.environ)
    for var in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "PYTHONPATH", "MUTANT_UNDER_TEST"):
        env.pop(var, None)  # the copy's conftest sets the collections path; nothing may reach the source tree
    cmd = [mutmut, "run", "--max-children", str(max_children)] + list(names)
    shown = cmd if len(names) < 4 else cmd[:4] + ["<%d mutant names>" % len(names)]
    print("mutation: %s (in %s)" % (" ".join(shown), os.path.relpath(WORK, REPO)), flush=True)
    start = time.monotonic()
    if sys.stdout.isatty():
        rc = subprocess.call(cmd, cwd=WORK, env=env)
    else:
        rc = _run_quietly(cmd, env)
    return rc, time.monotonic() - start


def _run_quietly(cmd, env, every=60):
    """Run mutmut with its spinner lines (redrawn with carriage returns) folded: each finished line once, and
    the latest progress line every ``every`` seconds. The whole output goes to .mutation/mutmut.log too."""
    proc = subprocess.Popen(cmd, cwd=WORK, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last_shown = time.monotonic()
    pending = ""
    with open(os.path.join(WORK, "mutmut.log"), "w") as log:
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            text = chunk.decode("utf-8", "replace")
            log.write(text)
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                shown = [s for s in line.split("\r") if s.strip()]
                if shown:
                    print(shown[-1].rstrip(), flush=True)
            pending = "\r".join(pending.split("\r")[-2:])  # the progress line is redrawn, never ended
            if time.monotonic() - last_shown > every and pending.strip("\r "):
                print("  " + pending.rstrip("\r ").rsplit("\r", 1)[-1].strip(), flush=True)
                last_shown = time.monotonic()
        if pending.strip("\r "):
            print(pending.rsplit("\r", 1)[-1].strip(), flush=True)
    return proc.wait()


# --- message-only mutants ------------------------------------------------------------------------------------

_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
# Message arguments besides ``raise SomeError(<message>, ...)``: (function or method name, the receiver's name
# ends with - "" for any receiver or none -, positional index or None, keyword or None). The first entry whose
# name and receiver match a call decides for it (``found.warn``'s first argument is a check name, not a message).
MESSAGE_ARGUMENTS = [
    # istio/diagnose.py's Findings: a check's name (scored) and its message, what istio_ca_diagnose reports
    ("ok", "found", 1, "message"),
    ("warn", "found", 1, "message"),
    ("problem", "found", 1, "message"),
    ("skip", "found", 1, "why"),
    ("append", "warnings", 0, None),  # self.warnings.append(...): the module's warnings
    ("extend", "warnings", 0, None),
    ("warn", "", 0, "msg"),  # module.warn(...), warnings.warn(...)
    ("deprecate", "", 0, "msg"),
    ("fail_json", "", None, "msg"),
    ("exit_json", "", None, "msg"),
    # vault/client.py's VaultClient uses action= only to word its errors ("cannot <action> <path>: ...")
    ("read", "client", None, "action"),
    ("list", "client", None, "action"),
    ("write", "client", None, "action"),
    ("delete", "client", None, "action"),
    ("request", "client", 2, "action"),
    ("_write", "self", 2, "action"),  # pki/intermediate.py: IntermediateCA._write hands it to client.write
    # istio/bundle.py's _Report: a check's detail, the text istio_ca_verify fails with and diagnose prints
    ("add", "report", 2, "detail"),
    ("skip", "report", 1, "why"),
]


class _NotMessageOnly(Exception):
    pass


def _changed_literals(a, b, path, out):
    """Walk two syntax trees together; collect (path, old, new) for str constants that differ.
    ``path`` is the list of (node, field, index) from the root. Any other difference raises."""
    if type(a) is not type(b):
        raise _NotMessageOnly()
    if isinstance(a, ast.AST):
        for field in a._fields:
            va, vb = getattr(a, field, None), getattr(b, field, None)
            if isinstance(a, ast.Constant) and field == "value":
                if type(va) is not type(vb) or (va != vb and not isinstance(va, str)):
                    raise _NotMessageOnly()
                if va != vb:
                    out.append((path, va, vb))
                continue
            if isinstance(va, list):
                if not isinstance(vb, list) or len(va) != len(vb):
                    raise _NotMessageOnly()
                for i, (x, y) in enumerate(zip(va, vb)):
                    _changed_literals(x, y, path + [(a, field, i)], out)
            else:
                _changed_literals(va, vb, path + [(a, field, None)], out)
    elif a != b:
        raise _NotMessageOnly()


def _name(node):
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_message_argument(call, field, index):
    """Whether the argument ``field``/``index`` of ``call`` is a message (MESSAGE_ARGUMENTS)."""
    name = _name(call.func)
    receiver = _name(call.func.value) if isinstance(call.func, ast.Attribute) else ""
    keyword = call.keywords[index].arg if field == "keywords" else None
    for function, receiver_suffix, position, keyword_name in MESSAGE_ARGUMENTS:
        if name == function and receiver.endswith(receiver_suffix):
            return (field == "args" and index == position) or (keyword is not None and keyword == keyword_name)
    return False


def _message_root(path):
    """Index in ``path`` of the step that enters a message argument, or None."""
    for i in range(len(path) - 1, -1, -1):
        node, field, index = path[i]
        if not isinstance(node, ast.Call) or field not in ("args", "keywords"):
            continue
        parent, parent_field, _index = path[i - 1] if i else (None, None, None)
        if isinstance(parent, ast.Raise) and parent_field == "exc" and field == "args" and index == 0:
            return i
        if _is_message_argument(node, field, index):
            return i
    return None


def _only_builds_text(steps):
    """True when each step below the message argument only builds a string."""
    for node, field, _index in steps:
        if isinstance(node, (ast.Tuple, ast.List, ast.JoinedStr, ast.FormattedValue, ast.keyword, ast.BoolOp)):
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            continue
        if isinstance(node, ast.IfExp) and field in ("body", "orelse"):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
            continue  # the receiver (through .func) or the arguments
        if isinstance(node, ast.Attribute) and node.attr in ("format", "join"):
            continue
        return False
    return True


def _format_fields(text):
    try:
        return [(name, spec, conv) for _lit, name, spec, conv in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return None


def message_only(orig_source, mutant_source):
    """Whether a mutant changes only the text of messages (the rule in this module's docstring).
    Both arguments are the source of the same function: the original and the mutant."""
    try:
        a, b = ast.parse(orig_source), ast.parse(mutant_source)
    except SyntaxError:
        return False
    changed = []
    try:
        _changed_literals(a, b, [], changed)
    except _NotMessageOnly:
        return False
    if not changed:
        return False
    for path, old, new in changed:
        root = _message_root(path)
        if root is None or not _only_builds_text(path[root + 1:]):
            return False
        steps = path[root + 1:]
        printf = any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mod) and f == "left" for n, f, _index in steps)
        formatted = any(isinstance(n, ast.Attribute) and n.attr == "format" and f == "value" for n, f, _index in steps)
        if printf and _PRINTF.findall(old) != _PRINTF.findall(new):
            return False
        if formatted and _format_fields(old) != _format_fields(new):
            return False
    return True


# --- results and report --------------------------------------------------------------------------------------

def group_of(status):
    if status in ("killed", "survived", "no tests"):
        return status
    return "timeout/suspicious"  # timeout, suspicious, segfault, interrupted, not checked, skipped


def first_changed_line(orig_code, mutant_code):
    a, b = orig_code.split("\n"), mutant_code.split("\n")
    for tag, i1, _i2, _j1, _j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            return min(i1, len(a) - 1)
    return 0


def source_line(source_tree, func_name, class_name, orig_code, offset):
    """Line in the source file of line ``offset`` of the function's code as mutmut renders it."""
    body = source_tree.body
    if class_name:
        cls = [n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name]
        body = cls[0].body if cls else []
    defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func_name]
    if not defs:
        return None
    def_re = re.compile(r"^\s*(async\s+)?def\s+%s\b" % re.escape(func_name))
    def_index = next((i for i, line in enumerate(orig_code.split("\n")) if def_re.match(line)), 0)
    return defs[0].lineno + offset - def_index


def collect(targets, count_messages, previous=None, sample=None):
    """Per file: the mutants with status, group, line and diff, from .mutation/mutants. ``previous``: the
    results of the run this one resumes (--resume-from), for the mutants mutmut did not run again this time;
    ``sample``: per file, the names of the mutants a sampled run (--sample) tested - only those are reported."""
    os.chdir(WORK)  # mutmut's readers work relative to the directory it ran in
    try:
        return {target: _collect_file("%s/%s" % (COLLECTION_PREFIX, target), count_messages,
                                      (previous or {}).get(target), (sample or {}).get(target))
                for target in targets}
    finally:
        os.chdir(REPO)


def _collect_file(path, count_messages, previous, sample):
    import libcst as cst
    from mutmut.mutation.data import MutantLineSpans, SourceFileMutationData
    from mutmut.mutation.diff_apply import generated_function_names, parse_generated_function
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    data = SourceFileMutationData(path=path)
    data.load()
    with open(path) as f:
        tree = ast.parse(f.read())
    spans = MutantLineSpans.load(path)
    if spans is None:
        sys.exit("mutation: no line index %s (mutmut older than 3.8?)" % os.path.join(WORK, "mutants", path + ".spans"))
    with open(os.path.join("mutants", path)) as f:
        mutated_lines = f.read().split("\n")
    codes = {}

    def code(generated, func_name, is_method):
        # as mutmut show renders it: the generated function alone, under the original function's name
        if generated not in codes:
            span = spans.span_by_function_name[generated]
            source = "\n".join(mutated_lines[span.start - 1:span.end]) + "\n"
            function = parse_generated_function(source, name=generated, is_method=is_method)
            codes[generated] = cst.Module([function.with_changes(name=cst.Name(func_name))]).code.strip()
        return codes.pop(generated) if "__mutmut_orig" not in generated else codes[generated]

    if previous and previous.get("sample"):
        sample = set(previous["mutants"])  # a resumed sampled run reports the same sample
    mutants = []
    for name, exit_code in sorted(data.exit_code_by_key.items(), key=lambda kv: _natural(kv[0])):
        if sample is not None and name not in sample:
            continue
        status = status_by_exit_code[exit_code]
        if exit_code is None and previous:
            # not run again: killed in the run this one resumes (a file of results may list only the others)
            status = previous["mutants"].get(name, "killed")
        func_name, class_name = orig_function_and_class_names_from_key(name)
        orig_name, mutant_name = generated_function_names(name)
        orig_code = code(orig_name, func_name, class_name is not None)
        mutant_code = code(mutant_name, func_name, class_name is not None)
        line = source_line(tree, func_name, class_name, orig_code, first_changed_line(orig_code, mutant_code))
        diff = "" if status == "killed" else "\n".join(difflib.unified_diff(
            orig_code.split("\n"), mutant_code.split("\n"), fromfile=path, tofile=path, lineterm=""))
        mutants.append({"name": name, "status": status, "group": group_of(status), "line": line, "diff": diff,
                        "message_only": not count_messages and message_only(orig_code, mutant_code)})
    return mutants


def _natural(name):
    head, _sep, num = name.rpartition("__mutmut_")
    return (head, int(num) if num.isdigit() else 0)


def wilson(part, whole, z=1.96):
    """The 95 % Wilson score interval of ``part`` / ``whole`` (a sampled run's score), in percent."""
    if not whole:
        return 0.0, 100.0
    p = float(part) / whole
    centre = (p + z * z / (2 * whole)) / (1 + z * z / whole)
    half = z * ((p * (1 - p) / whole + z * z / (4 * whole * whole)) ** 0.5) / (1 + z * z / whole)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def table(results, samples=None):
    rows = ["| File | Mutants | Killed | Survived | Timeout/suspicious | No tests | Message-only (excluded) | Score "
            "| Score, all counted |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    keys = ("mutants", "killed", "survived", "timeout/suspicious", "no tests", "message", "message killed")
    totals = dict.fromkeys(keys, 0)

    def percent(part, whole):
        return "%.1f %%" % (100.0 * part / whole) if whole else "-"

    def row(label, c):
        msg = "%d (%d killed)" % (c["message"], c["message killed"]) if c["message"] else "0"
        return "| %s | %d | %d | %d | %d | %d | %s | %s | %s |" % (
            label, c["mutants"], c["killed"], c["survived"], c["timeout/suspicious"], c["no tests"], msg,
            percent(c["killed"], c["mutants"] - c["message"]),
            percent(c["killed"] + c["message killed"], c["mutants"]))

    for target, mutants in results.items():
        sample = (samples or {}).get(target)
        c = dict.fromkeys(keys, 0)
        c["mutants"] = len(mutants)
        for m in mutants:
            if m["message_only"]:
                c["message"] += 1
                c["message killed"] += m["status"] == "killed"
            else:
                c[m["group"]] += 1
        for k in keys:
            totals[k] += c[k]
        label = "`%s`" % target
        if sample:
            low, high = wilson(c["killed"], c["mutants"] - c["message"])
            label += " (random sample of %d of %d mutants, seed %d; score's 95 %% interval %.1f-%.1f %%)" % (
                sample["size"], sample["of"], sample["seed"], low, high)
        rows.append(row(label, c))
    if len(results) > 1:
        rows.append(row("**all**", totals))
    return "\n".join(rows)


def write_reports(results, run, count_messages):
    samples = run.get("sample_info") or {}
    os.makedirs(OUTPUT, exist_ok=True)
    rule = ("message-only mutants are counted like the others (--count-messages)" if count_messages else
            "message-only mutants (only the literal text of an error or warning message changed; the rule is in "
            "tools/mutation.py) are counted neither way")
    when = "`%s`: %.0f s wall time (mutmut %.0f s)" % (run["command"], run["seconds"], run["mutmut_seconds"])
    text = ("# Mutation testing (mutmut, tests/unit only)\n\n%s.\n\n"
            "Score = killed / (mutants - message-only): survived, timeout/suspicious and no tests count as not "
            "killed; %s. Score, all counted = killed / mutants, message-only ones included. Every mutant not "
            "killed, with its line and diff: tests/output/mutation-survivors.txt.\n\n%s\n"
            % (when, rule, table(results, samples)))
    with open(REPORT, "w") as f:
        f.write(text)

    sections = [("survived", lambda m: not m["message_only"] and m["group"] == "survived"),
                ("no tests (no unit test calls the function)",
                 lambda m: not m["message_only"] and m["group"] == "no tests"),
                ("timeout/suspicious", lambda m: not m["message_only"] and m["group"] == "timeout/suspicious"),
                ("message-only, not killed (excluded from the score)",
                 lambda m: m["message_only"] and m["status"] != "killed")]
    with open(SURVIVORS, "w") as f:
        f.write("# Mutants not killed by tests/unit (tools/mutation.py; %s).\n"
                "# Each: file:line  mutant name  status, then mutmut's diff of the function.\n"
                "# Show one again: cd .mutation && ../.venv/bin/mutmut show <name>\n" % when)
        for title, keep in sections:
            chosen = [(t, m) for t, ms in results.items() for m in ms if keep(m)]
            f.write("\n%s\n## %s: %d\n%s\n" % ("=" * 100, title, len(chosen), "=" * 100))
            for target, m in chosen:
                f.write("\n%s:%s  %s  %s\n%s\n" % (target, m["line"], m["name"], m["status"], m["diff"]))
    with open(RESULTS, "w") as f:
        json.dump(dict((target, {"sha256": source_hash(target, STAGE), "sample": samples.get(target),
                                 "mutants": dict((m["name"], m["status"]) for m in ms)})
                       for target, ms in results.items()), f, indent=1, sort_keys=True)
    return text


def source_hash(target, root=None):
    """SHA-256 of ``target`` in the working tree, or under ``root`` (the copy mutmut mutated: the tree may have
    moved on while it ran)."""
    with open(os.path.join(root or REPO, target), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def draw_sample(targets, size, seed):
    """Generate the mutants (mutmut does it before testing any; a name that matches none stops it there) and
    draw ``size`` of each file's at random. Returns ({target: [names]}, {target: {size, of, seed}})."""
    from mutmut.mutation.data import SourceFileMutationData

    print("mutation: generating the mutants to draw a sample of %d per file" % size, flush=True)
    run_mutmut(1, ["meshpki-sample-nothing-matches-this"])  # fails after generating them and the stats: expected
    sample, info = {}, {}
    os.chdir(WORK)
    try:
        for target in targets:
            data = SourceFileMutationData(path="%s/%s" % (COLLECTION_PREFIX, target))
            data.load()
            names = sorted(data.exit_code_by_key, key=_natural)
            if not names:
                sys.exit("mutation: mutmut made no mutants of %s (see .mutation/mutmut.log)" % target)
            sample[target] = sorted(random.Random("%s:%s" % (seed, target)).sample(names, min(size, len(names))),
                                    key=_natural)
            info[target] = {"size": len(sample[target]), "of": len(names), "seed": seed}
    finally:
        os.chdir(REPO)
    return sample, info


def resume_names(previous, targets):
    """The mutants of ``targets`` a resumed run tests again: every one not killed in ``previous``. Refused when
    a file changed since (its mutants would not be the same) or was not part of that run."""
    names = []
    for target in targets:
        if target not in previous:
            sys.exit("mutation: %s was not mutated in the run to resume; run it in full" % target)
        if previous[target]["sha256"] != source_hash(target):
            sys.exit("mutation: %s changed since the run to resume (its mutants differ): run it in full" % target)
        names.extend(n for n, status in sorted(previous[target]["mutants"].items()) if status != "killed")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", default=os.environ.get("MUTATION_FILES", ""),
                        help="comma- or space-separated paths/globs instead of MUTATE (or MUTATION_FILES)")
    parser.add_argument("--max-children", type=int, default=int(os.environ.get("MUTATION_JOBS") or 1),
                        help="mutants tested at a time (default 1, or MUTATION_JOBS)")
    parser.add_argument("--report-only", action="store_true", help="report the last run in .mutation/ again")
    parser.add_argument("--count-messages", action="store_true", help="score message-only mutants too")
    parser.add_argument("--resume-from", metavar="RESULTS_JSON",
                        help="test again only the mutants not killed in that run's tests/output/mutation-results.json "
                             "(same source files, tests only added): the others count as killed, as they were")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="test a uniform random sample of N mutants per file (the report gives the score's 95 %% "
                             "interval); for a first look at a big file on a small machine")
    parser.add_argument("--seed", type=int, default=1, help="random seed of --sample (default 1)")
    args = parser.parse_args()
    previous = None
    if args.resume_from:
        with open(args.resume_from) as f:
            previous = json.load(f)

    if args.report_only:
        try:
            with open(RUN_INFO) as f:
                run = json.load(f)
        except (OSError, ValueError):
            sys.exit("mutation: no finished run in .mutation/ yet: run make mutation first")
    else:
        start = time.monotonic()
        patterns = [p for p in re.split(r"[,\s]+", args.files) if p]
        files = repo_files()
        targets = select_files(patterns or MUTATE, files)
        print("mutation: %d file(s): %s" % (len(targets), ", ".join(targets)), flush=True)
        names = resume_names(previous, targets) if previous else ()
        stage(files)
        write_config(targets)
        command = "python tools/mutation.py%s --max-children %d%s" % (
            " --files %s" % ",".join(targets) if patterns else "", args.max_children,
            " --resume-from %s (%d mutants tested again)" % (args.resume_from, len(names)) if previous else "")
        if previous and not names:
            sys.exit("mutation: every mutant of these files was killed in the run to resume")
        sample, sample_info = None, {}
        if args.sample and not previous:
            sample, sample_info = draw_sample(targets, args.sample, args.seed)
            names = [n for target in targets for n in sample[target]]
            command += " --sample %d --seed %d" % (args.sample, args.seed)
        elif previous:
            sample_info = dict((t, previous[t].get("sample")) for t in targets if previous[t].get("sample"))
        rc, mutmut_seconds = run_mutmut(args.max_children, names)
        if rc != 0:
            print("mutation: mutmut exited with %d; no report" % rc, file=sys.stderr)
            return rc
        run = {"targets": targets, "command": command, "mutmut_seconds": round(mutmut_seconds, 1),
               "seconds": round(time.monotonic() - start, 1), "previous": previous, "sample": sample,
               "sample_info": sample_info}
        with open(RUN_INFO, "w") as f:
            json.dump(run, f, indent=2)
    results = collect(run["targets"], args.count_messages, run.get("previous"), run.get("sample"))
    text = write_reports(results, run, args.count_messages)
    print("\n" + text)
    print("(written to %s and %s)" % (os.path.relpath(REPORT, REPO), os.path.relpath(SURVIVORS, REPO)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
