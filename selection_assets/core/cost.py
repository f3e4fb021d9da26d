"""Selection and training cost in FLOPs (Ivison et al. 2025's cost model, docs/science.md).

N_p = model parameters, L = mean tokens per example, y = pool size, x = selected size. A method's
selection cost is the sum of the model passes its inputs ran (`Pass`), each a factor (2 for a
forward pass, 6 for a forward and backward pass) x N_p x tokens x examples.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable


def forward_flops(n_params: int, tokens_per_example: float, n_examples: int) -> float:
    """One forward pass over `n_examples` examples: 2 N_p L n."""
    return 2.0 * n_params * tokens_per_example * n_examples


def training_flops(n_params: int, tokens_per_example: float, n_selected: int, epochs: float) -> float:
    """Fine-tuning on the selection: 6 N_p L x epochs."""
    return 6.0 * n_params * tokens_per_example * n_selected * epochs


@dataclass(frozen=True)
class Pass:
    """`examples` examples of `tokens` tokens each through a model of `parameters` parameters, at
    `factor` FLOPs per parameter and token (2: forward; 6: forward and backward)."""

    parameters: int
    tokens: float
    examples: float
    factor: float = 2.0


@dataclass(frozen=True)
class Spent:
    """What reading one input of a method cost its choice: the model passes behind it and their
    measured seconds."""

    passes: tuple[Pass, ...] = ()
    seconds: float = 0.0

    def __add__(self, other: "Spent") -> "Spent":
        return Spent(self.passes + other.passes, self.seconds + other.seconds)


def total_flops(passes: Iterable[Pass]) -> float:
    """The FLOPs of `passes`: passes of one model at one length and factor are added as examples
    first (one product per group, in a fixed order), so the total does not depend on their order."""
    examples: dict[tuple[float, int, float], float] = defaultdict(float)
    for one in passes:
        examples[(one.factor, one.parameters, one.tokens)] += one.examples
    return sum(factor * parameters * tokens * examples[factor, parameters, tokens]
               for factor, parameters, tokens in sorted(examples)) if examples else 0.0
