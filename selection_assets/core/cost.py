"""Selection and training cost in FLOPs (Ivison et al. 2025's cost model, SCIENCE.md).

N_p = model parameters, L = mean tokens per example, y = pool size, x = selected size.
"""

from __future__ import annotations


def forward_flops(n_params: int, tokens_per_example: float, n_examples: int) -> float:
    """One forward pass over `n_examples` examples: 2 N_p L n."""
    return 2.0 * n_params * tokens_per_example * n_examples


def training_flops(n_params: int, tokens_per_example: float, n_selected: int, epochs: float) -> float:
    """Fine-tuning on the selection: 6 N_p L x epochs."""
    return 6.0 * n_params * tokens_per_example * n_selected * epochs


def selection_flops(method_needs: frozenset[str], n_params: int, tokens_per_example: float,
                    pool_size: int, n_queries: int) -> float:
    """What a method spends choosing: embedding the pool (and queries) when it needs embeddings."""
    if "embeddings" in method_needs:
        return forward_flops(n_params, tokens_per_example, pool_size + n_queries)
    return 0.0
