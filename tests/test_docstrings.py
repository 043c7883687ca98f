"""Every public function and class of course_lib has a docstring (the API reference of the
website is generated from them by Sphinx autodoc)."""

import importlib
import inspect
import pkgutil

import course_lib

# The instructor command line is documented in book/instructor_guide.md, not in the reference.
NOT_IN_REFERENCE = ("course_lib.grading",)


def public_modules() -> list[str]:
    names = ["course_lib"]
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts) or info.name.startswith(NOT_IN_REFERENCE):
            continue
        names.append(info.name)
    return sorted(names)


def public_objects(module_name: str):
    """(qualified name, object) for each function and class defined in the module."""
    module = importlib.import_module(module_name)
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module_name:
            continue  # imported from elsewhere: documented where it is defined
        yield f"{module_name}.{name}", obj


def test_every_public_module_function_and_class_has_a_docstring():
    missing = [name for name in public_modules() if not importlib.import_module(name).__doc__]
    for module_name in public_modules():
        for name, obj in public_objects(module_name):
            if not (obj.__doc__ or "").strip() or (
                inspect.isclass(obj) and obj.__doc__ == inspect.getdoc(obj.__mro__[1])
            ):
                missing.append(name)
    assert missing == [], f"public names without a docstring: {missing}"


def test_the_reference_page_lists_every_public_module():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "book" / "api.md").read_text()
    absent = [name for name in public_modules() if f".. automodule:: {name}\n" not in page]
    assert absent == [], f"modules missing from book/api.md: {absent}"
