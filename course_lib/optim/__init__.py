"""Optimizers of the course: torch.optim.Optimizer subclasses, each with its update rule in
a plain function beside it (``sgd_update_``, ``adam_update_``, ...), built from the small
pieces in :mod:`course_lib.optim.transforms`.
"""

from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lbfgs import LBFGS
from .lion import Lion
from .muon import Muon, newton_schulz_
from .nadam import NAdam
from .newton import Newton
from .radam import RAdam
from .rmsprop import RMSprop
from .sam import SAM
from .schedulefree import AdamWScheduleFree
from .sgd import SGD
from .shampoo import Shampoo
from .soap import SOAP

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adafactor", "Lion"]
__all__ += ["Newton", "LBFGS", "Shampoo"]
__all__ += ["RAdam", "NAdam"]
__all__ += ["AdamWScheduleFree"]
__all__ += ["Muon", "newton_schulz_", "SOAP"]
__all__ += ["SAM"]
