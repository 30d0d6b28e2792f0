"""rlzoo: reinforcement-learning algorithms and a command-line training zoo on PyTorch and Gymnasium."""
__version__ = "0.1.0"

from rlzoo.algos import *  # noqa: E402,F401,F403
from rlzoo.algos import ALGOS, __all__ as _algo_names  # noqa: E402

__all__ = ["ALGOS", "__version__", *_algo_names]
