"""The README's "Use it" and the docs site's install page (releases.rst, "Installing") give the same install
commands (issue 15, point 5): the collection from Galaxy and from the release tarball, then the Python
requirements - from the requirements.txt the installed collection really holds."""

import os
import re
import shlex

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
with open(os.path.join(REPO, "galaxy.yml")) as _f:
    GALAXY = yaml.safe_load(_f)
FQCN = "%s.%s" % (GALAXY["namespace"], GALAXY["name"])
TARBALL = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])


def _read(rel):
    with open(os.path.join(REPO, rel)) as f:
        return f.read()


def _section(text, start, end):
    begin = text.index(start)
    return text[begin:text.index(end, begin + len(start))]


def _install_commands(text):
    """The `$ ansible-galaxy collection install` and `$ python3 -m pip install` lines, in order."""
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("$ ") and re.match(r"\$ (ansible-galaxy collection install|python3 -m pip install)", line):
            commands.append(line[2:].split("  #")[0].strip())
    return commands


def readme_commands():
    return _install_commands(_section(_read("README.md"), "## Use it", "\n## "))


def docs_commands():
    rst = _section(_read("docs/docsite/rst/releases.rst"), "Installing\n----------", "From a checkout")
    return _install_commands(rst)


def test_readme_and_docs_give_the_same_install_commands():
    assert readme_commands() == docs_commands()


def test_both_install_ways_and_the_python_requirements_are_shown():
    commands = readme_commands()
    assert commands[:2] == ["ansible-galaxy collection install %s" % FQCN,
                            "ansible-galaxy collection install %s" % TARBALL]
    pip = [shlex.split(c) for c in commands if c.startswith("python3 -m pip install")]
    assert len(pip) == 1 and pip[0][:5] == ["python3", "-m", "pip", "install", "-r"], commands
    # The file the pip line names is the collection's own requirements.txt, where ansible-galaxy installs it.
    assert pip[0][5] == "~/.ansible/collections/ansible_collections/%s/%s/requirements.txt" % (
        GALAXY["namespace"], GALAXY["name"])
    assert os.path.isfile(os.path.join(REPO, "requirements.txt"))
    assert not [p for p in GALAXY.get("build_ignore", []) if p in ("requirements.txt", "*.txt")]


def test_the_packages_the_docs_name_are_the_requirements():
    with open(os.path.join(REPO, "requirements.txt")) as f:
        wanted = {re.split(r"[<>=!~ ]", line.strip(), maxsplit=1)[0].lower() for line in f
                  if line.strip() and not line.startswith("#")}
    for text in (_section(_read("README.md"), "## Use it", "\n## "),
                 _section(_read("docs/docsite/rst/releases.rst"), "Installing\n----------", "From a checkout")):
        named = set(re.search(r"need\s+on the controller \(([^:)]+):", text).group(1).replace(",", " ").lower().split())
        assert named == wanted, (named, wanted)
