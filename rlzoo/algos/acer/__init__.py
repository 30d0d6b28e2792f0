"""ACER (Wang et al. 2016): the algorithm, its policy, its segment replay memory and its update maths."""
from rlzoo.algos.acer.acer import ACER
from rlzoo.algos.acer.policies import ACERCnnPolicy, ACERMultiInputPolicy, ACERPolicy

__all__ = ["ACER", "ACERPolicy", "ACERCnnPolicy", "ACERMultiInputPolicy"]
