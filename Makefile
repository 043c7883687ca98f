# The two commands of the README: `make site` builds the website, `make test` runs every test.
# Both start from a fresh clone: scripts/setup.sh installs what is missing and skips the rest.

VENV := .venv/bin
PYTEST_FLAGS := --nbval-lax --nbval-cell-timeout=180 --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: site test setup setup-browser notebooks release clean

site: setup
	$(VENV)/jupyter-book build . --warningiserror --keep-going

test: setup-browser site
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/python -m course_lib.grading release --check
	$(VENV)/python -m course_lib.grading validate
	$(VENV)/pytest $(PYTEST_FLAGS) tests notebooks solutions

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
