"""The explorers of the course under one name (the layout's ``widgets.py``): chapter 1's
hiker (:mod:`course_lib.hiker`) and the live and precomputed explorers of every chapter
(:mod:`course_lib.explorer`). New code imports those modules directly."""

from course_lib.explorer import live, precomputed
from course_lib.hiker import HikerWalk, draw_hiker, hiker_walk

__all__ = ["HikerWalk", "draw_hiker", "hiker_walk", "live", "precomputed"]
