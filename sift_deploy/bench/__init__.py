"""`sift-deploy bench` (interim: the module moves into this package; split follows)."""

from .run import *  # noqa: F401,F403
from .run import _cpu_model, _os_release  # noqa: F401
