# The two commands of README.md: `make run` (set up and run the hub) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# Re-install when any pyproject.toml (the hub's or a plugin's) changes.
PYPROJECTS = pyproject.toml $(wildcard plugins/hub-*/pyproject.toml)
STAMP = $(VENV)/.installed-$(shell cat $(PYPROJECTS) | cksum | cut -d' ' -f1)

.PHONY: run test lint tools bench clean

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	for d in plugins/hub-*/; do \
	  if [ -f "$$d/pyproject.toml" ]; then $(BIN)/python -m pip install --quiet -e "$$d[test]" || exit 1; fi; \
	done
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hub serve --examples examples

# The static checks, each runnable alone (CONTRIBUTING.md): style, format, types, imports.
CHECKED = hub tests bench plugins scripts
lint: $(STAMP)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/mypy hub
	$(BIN)/lint-imports

# Tools the tests run besides Python: node (Octokit's webhook signer, tests/vendor/) and
# Chromium (the web UI's browser tests, driven by Playwright: never `playwright install`).
# As root (CI), Debian's packages are installed when absent; otherwise the tests say what is
# missing (and with CI=true a missing tool fails them).
tools:
	@command -v node >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq nodejs >/dev/null; } || true
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } || true

test: lint tools
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/embedded.py

clean:
	rm -rf $(VENV) .hub .pytest_cache .mypy_cache .ruff_cache
