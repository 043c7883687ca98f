"""The former name of :mod:`course_lib.hiker`, kept so that ``from course_lib import widgets``
(chapter 1) still works. New code imports ``course_lib.hiker``."""

from course_lib.hiker import HikerWalk, draw_hiker, hiker_animation, hiker_explorer, hiker_walk

__all__ = ["HikerWalk", "draw_hiker", "hiker_animation", "hiker_explorer", "hiker_walk"]
