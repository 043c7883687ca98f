"""Instructor tools: release exercise sets, validate them, grade a class.

    python -m course_lib.grading release [chNN ...] [--check]
    python -m course_lib.grading validate [chNN ...]
    python -m course_lib.grading grade chNN --submissions DIR --out grades.csv

``solutions/chNN/chNN.ipynb`` is the single source of each set (nbgrader cell metadata and
``### BEGIN SOLUTION`` / ``### BEGIN HIDDEN TESTS`` markers). ``release`` writes the student
version to ``exercises/chNN/chNN.ipynb``. ``grade`` puts each student's answer cells into a
fresh copy of the source (so the tests, hidden ones included, always come from the source)
and runs it in a separate, time- and memory-limited process (``sandbox``).
"""
