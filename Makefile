# meshpki.vault_ca - the README's two commands (make demo, make test) and their parts.
# Every target builds what it needs: the virtualenv with pinned tools, the collection path, the
# pip bootstrap stand-in for ansible-test.

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
COLLECTION_LINK := .collections/ansible_collections/meshpki/vault_ca
SANITY_ROOT := .sanity/ansible_collections/meshpki/vault_ca
PYTEST_ARGS ?=
# Which files `make sanity` copies: tracked plus new (not ignored) ones; SANITY_FILES=--cached for
# the committed tree only.
SANITY_FILES ?= --cached --others --exclude-standard

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections

.PHONY: help venv demo test unit integration molecule sanity lint ansible-lint changelog-lint clean docs docs-lint \
	test-matrix release-notes bench reliability reliability-fast rotation-kills mutation

help:
	@echo "make demo   - run the main job against a local OpenBao dev server (embedded default)"
	@echo "make test   - every test: unit, integration (real OpenBao), molecule, lint, docs, sanity"
	@echo "make bench  - the collection vs the guide by hand vs community.hashi_vault, 1-500 clusters (~20 min)"
	@echo "make reliability - faults, concurrency, HA, bad input, leaks, privilege, TLS, traversal, redirects (~22 min)"
	@echo "make rotation-kills - a root rotation run killed after each of its writes, then resumed (~28 min)"
	@echo "make mutation - mutation score of module_utils against the unit tests (mutmut; FILES=... for some)"

$(STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

venv: $(STAMP) $(COLLECTION_LINK)

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

demo: venv
	$(BIN)/python tools/demo.py

test: venv unit integration reliability-fast molecule lint ansible-lint docs-lint docs changelog-lint sanity
	@echo "make test: all passed"

unit: venv
	$(BIN)/python -m pytest tests/unit benchmarks/test_bench_tools.py -q $(PYTEST_ARGS)

integration: venv
	$(BIN)/python -m pytest tests/integration -q -n 2 $(PYTEST_ARGS)

# The reliability and security suite (tests/reliability): one table of what was tried and what held,
# also written to tests/output/reliability-report.md. make test runs its fast part (bad input, secret
# leaks, least privilege, TLS); the full run adds fault injection, concurrency and a 3-node raft cluster.
reliability: venv
	$(BIN)/python tools/reliability.py

reliability-fast: venv
	$(BIN)/python tools/reliability.py --fast

# A root rotation run SIGKILLed after each of its writes, then resumed (tests/integration/test_root_rotation_resume.py
# with every boundary; make test runs two of them): about 28 min on two cores.
rotation-kills: venv
	MESHPKI_ROTATION_KILLS=all $(BIN)/python -m pytest tests/integration/test_root_rotation_resume.py -q -n 2 -s \
	  $(PYTEST_ARGS)

# Mutation testing (tools/mutation.py, mutmut from requirements-mutation.txt): the files listed in MUTATE
# there - or FILES="plugins/module_utils/pki/x509.py ..." (globs too) - against tests/unit only, one mutant at a
# time (MUTATION_JOBS=2 for two). SAMPLE=N tests a random sample of N mutants per file; RESUME=1 tests again only
# the mutants the last run (tests/output/mutation-results.json) left alive. Prints the per-file table, also
# written to tests/output/mutation-report.md; every mutant not killed with its line and diff in
# tests/output/mutation-survivors.txt. Not in make test or CI.
MUTATION_STAMP := $(VENV)/.installed-mutation
FILES ?=
SAMPLE ?=
RESUME ?=

$(MUTATION_STAMP): $(STAMP) requirements-mutation.txt
	$(BIN)/python -m pip install --quiet -r requirements-mutation.txt
	touch $@

mutation: venv $(MUTATION_STAMP)
	$(BIN)/python tools/mutation.py $(if $(FILES),--files "$(FILES)") $(if $(SAMPLE),--sample $(SAMPLE)) \
		$(if $(RESUME),--resume-from tests/output/mutation-results.json)

# The role end to end on localhost: default (one cluster) and multicluster (three clusters, each
# with its own fake API server). The kind scenario needs Docker and is not run here.
molecule: venv
	PATH="$(BIN):$$PATH" MOLECULE_PYTHON=$(BIN)/python $(BIN)/molecule test -s default
	PATH="$(BIN):$$PATH" MOLECULE_PYTHON=$(BIN)/python $(BIN)/molecule test -s multicluster

# ruff, then pycodestyle as ansible-test sanity's pep8 runs it (line length 160, its ignore list): ruff does not
# check continuation-line indents (E12x), which sanity rejects.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/pycodestyle --max-line-length 160 --ignore E402,W503,W504,E741,E203,E701,E704 \
	  $$(git ls-files '*.py')

ansible-lint: venv
	PATH="$(BIN):$$PATH" $(BIN)/ansible-lint --profile production --offline

changelog-lint: venv
	$(BIN)/antsibull-changelog lint

# ansible-test needs the collection under ansible_collections/<ns>/<name> and fetches a pip
# bootstrap script from the internet: copy the tracked (and new, not ignored) files into such a
# tree (with a git repository of its own, since ansible-test lists files with git, and this
# repository ignores .sanity/), and put the stand-in where ansible-test looks for its cached script.
sanity: venv
	mkdir -p $(HOME)/.ansible/test/cache
	cp tools/get_pip_standin.py $(HOME)/.ansible/test/cache/get_pip_24_2.py
	rm -rf .sanity && mkdir -p $(SANITY_ROOT)
	git ls-files -z $(SANITY_FILES) | xargs -0 -I{} cp --parents {} $(SANITY_ROOT)/ 2>/dev/null; \
	  git ls-files -z --deleted | xargs -0 -I{} rm -f $(SANITY_ROOT)/{}
	cd $(SANITY_ROOT) && git init -q && git add -A && \
	  $(BIN)/ansible-test sanity --python 3.11 --requirements --color no

# The HTML docs site (antsibull-docs + Sphinx, warnings are errors) in .docs-build/html/.
docs: venv
	tools/build_docs.sh

# Plugin, role and docs-site documentation as antsibull-docs lints it, and the docs pages'
# examples against the modules' options and the role's argument specs.
docs-lint: venv
	tools/docs_lint.sh

# Unit + integration tests with ansible-core 2.16-2.19 (Python 3.11) and 2.20 (Python 3.12), each in
# .venv-matrix-<version>. MATRIX="2.16 2.20" runs some; MATRIX_RESUME=1 skips entries passed on this tree.
MATRIX ?=
test-matrix: venv
	tools/test_matrix.sh $(MATRIX)

# changelogs/changelog.yaml and CHANGELOG.md for galaxy.yml's version from the fragments (kept); re-runnable.
release-notes: venv
	tools/release_notes.sh

# Benchmarks (benchmarks/README.md): writes benchmarks/results.md and benchmarks/scale.png; makes
# benchmarks/.venv-peer (ansible + community.hashi_vault, matplotlib, py-spy) on first use.
# BENCH_ARGS go to benchmarks/bench.py, e.g. BENCH_ARGS='--budget 1800' so that the 500-cluster point fits.
bench: venv
	PYTHON=$(PYTHON) BENCH_COMMAND="make bench$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" \
	  benchmarks/run.sh $(BENCH_ARGS)

clean:
	rm -rf .sanity .mutation .collections tests/output .pytest_cache .ruff_cache .docs-build
