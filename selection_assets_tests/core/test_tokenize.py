"""Chat formatting: answer tokens are exactly the assistant contents and their EOS."""

from selection_assets.core.tokenize import encode_conversations, format_conversation


def test_answer_mask_covers_assistant_content_and_eos(world_lm):
    tokenizer, _, _ = world_lm
    messages = [{"role": "user", "content": "What is the capital of Kalovia?"},
                {"role": "assistant", "content": "Tenmar"},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": "You are welcome."}]
    enc = encode_conversations(tokenizer, [messages])[0]
    answer_ids = [t for t, is_answer in zip(enc.input_ids, enc.answer_mask) if is_answer]
    eos = tokenizer.eos_token_id
    first, second = tokenizer.decode([t for t in answer_ids if t != eos]), answer_ids.count(eos)
    assert first == "TenmarYou are welcome." and second == 2
    assert tokenizer.decode(enc.input_ids[enc.last_answer_start:]).startswith("You are welcome.")
    assert tokenizer.decode(enc.input_ids) == format_conversation(messages, tokenizer.eos_token)


def test_truncation_cuts_ids_and_mask_together(world_lm):
    tokenizer, _, _ = world_lm
    messages = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "ok"}]
    enc = encode_conversations(tokenizer, [messages], max_length=10)[0]
    assert len(enc.input_ids) == len(enc.answer_mask) == 10 and not any(enc.answer_mask)
