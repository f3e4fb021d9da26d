"""The embedded default world: a generated, labelled multi-skill pool, eval tasks, a tokenizer
trained on the pool's text and a tiny Llama-style LM pre-trained on it. Pure compute, no Dagster."""
