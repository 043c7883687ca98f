# The commands of the README: `make site` builds the website, `make test` runs every test,
# `make lab` (for a learner: no Node.js, no website) sets up the runtime and opens JupyterLab.
# All start from a fresh clone: scripts/setup.sh installs what is missing and skips the rest.

VENV := .venv/bin
PYTEST_FLAGS := --nbval-lax --nbval-cell-timeout=180 --nbval-sanitize-with tests/nbval_sanitize.cfg
# one pytest worker per core; each file (a notebook's cells, a module's fixtures) stays on one
PYTEST_FLAGS += -n auto --dist loadfile --durations=20

.PHONY: site pdf test lab setup setup-browser notebooks release clean

site: setup
	$(VENV)/jupyter-book build . --warningiserror --keep-going

# The whole book as one PDF, offline: a single-page build printed by Chromium.
pdf: setup-browser
	$(VENV)/jupyter-book build . --builder custom --custom-builder singlehtml
	$(VENV)/python scripts/pdf.py _build/singlehtml/index.html _build/book.pdf

test: setup-browser site
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/python scripts/lock.py --check
	$(VENV)/python -m course_lib.grading release --check
	$(VENV)/python -m course_lib.grading validate
	$(VENV)/pytest $(PYTEST_FLAGS) tests notebooks solutions

# nbgrader's server and lab extensions (installed for the instructor's tools) are switched
# off here: a learner's JupyterLab has no nbgrader course directory.
lab:
	scripts/setup.sh --lab
	JUPYTER_CONFIG_PATH=$(CURDIR)/scripts/lab-config $(VENV)/jupyter lab notebooks

setup:
	scripts/setup.sh

setup-browser:
	scripts/setup.sh --browser

# Re-execute every chapter in place (outputs and widget state are committed).
notebooks: setup
	$(VENV)/python scripts/execute_notebooks.py notebooks/*.ipynb

# Regenerate the student exercise sets from the solutions.
release: setup
	$(VENV)/python -m course_lib.grading release

clean:
	rm -rf _build
