"""Selection and training cost in FLOPs (Ivison et al. 2025's cost model, docs/science.md).

N_p = model parameters, L = mean tokens per example, y = pool size, x = selected size.
"""

from __future__ import annotations


def forward_flops(n_params: int, tokens_per_example: float, n_examples: int) -> float:
    """One forward pass over `n_examples` examples: 2 N_p L n."""
    return 2.0 * n_params * tokens_per_example * n_examples


def training_flops(n_params: int, tokens_per_example: float, n_selected: int, epochs: float) -> float:
    """Fine-tuning on the selection: 6 N_p L x epochs."""
    return 6.0 * n_params * tokens_per_example * n_selected * epochs


def less_flops(n_params: int, tokens_per_example: float, n_featurised: int, checkpoints: int,
               warmup_tokens: float) -> float:
    """LESS: the LoRA warm-up (6 N_p per trained token) and a forward and backward pass per
    featurised example (pool and queries) and checkpoint, 6 N_p L each."""
    return 6.0 * n_params * (warmup_tokens + tokens_per_example * n_featurised * checkpoints)


def diverse_evol_flops(n_params: int, tokens_per_example: float, pool_size: int, budgets, epochs: float) -> float:
    """DiverseEvol, for every budget: each round fine-tunes on the choice so far and embeds the pool."""
    from selection_assets.core.methods.diverse_evol import round_sizes

    flops = 0.0
    for budget in budgets:
        sizes = round_sizes(budget)
        for round_index in range(1, len(sizes)):
            flops += training_flops(n_params, tokens_per_example, sum(sizes[:round_index]), epochs)
            flops += forward_flops(n_params, tokens_per_example, pool_size)
    return flops


def selection_flops(needs: frozenset[str], *, lm_parameters: int, embedding_parameters: int,
                    tokens_per_example: float, pool_size: int, n_queries: int, gradient_checkpoints: int = 0,
                    warmup_tokens: float = 0.0, budgets=(), epochs: float = 0.0) -> float:
    """What a method spends choosing, by what it reads: an embedding pass over the pool (and the
    queries), or LESS's warm-up and gradient passes; one LM pass for CE(A | Q), a second for CE(A)
    (IFD); DiverseEvol's fine-tuning rounds and re-embeddings for each of `budgets`; nothing for
    counts or shuffles."""
    from selection_assets.core.methods import Need

    flops = 0.0
    if Need.FINETUNE_ROUNDS in needs:
        flops += diverse_evol_flops(lm_parameters, tokens_per_example, pool_size, budgets, epochs)
    if Need.GRADIENTS in needs:
        featurised = pool_size + (n_queries if Need.QUERIES in needs else 0)
        flops += less_flops(lm_parameters, tokens_per_example, featurised, gradient_checkpoints, warmup_tokens)
    elif Need.EMBEDDINGS in needs:
        embedded = pool_size + (n_queries if Need.QUERIES in needs else 0)
        flops += forward_flops(embedding_parameters, tokens_per_example, embedded)
    for need in (Need.ANSWER_LOSSES, Need.ANSWER_LOSSES_ALONE):
        if need in needs:
            flops += forward_flops(lm_parameters, tokens_per_example, pool_size)
    return flops
