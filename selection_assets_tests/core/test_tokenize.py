"""Chat formatting: answer tokens are exactly the assistant contents and their end of turn, in the
Tulu format and under a tokenizer's own chat template."""

import copy

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from selection_assets.core.tokenize import (CHAT_SPECIAL_TOKENS, encode_conversations, format_conversation,
                                            generation_prompt_text, token_counts, tulu_text)


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
    # the text as open-instruct encodes it: no newline after the last EOS
    assert tokenizer.decode(enc.input_ids) == format_conversation(messages, tokenizer.eos_token)[:-1]
    assert enc.input_ids[-1] == eos
    # the answer that token counts, CE(A | Q) and token-length selection see is the last turn only
    total, answer = token_counts([enc])
    assert total[0] == len(enc.input_ids) and answer[0] == len(enc.input_ids) - enc.last_answer_start < sum(
        enc.answer_mask)


def test_tulu_text_strips_each_message_as_open_instruct_does(world_lm):
    """open-instruct's _concat_messages: "<|user|>\\n" + content.strip() + "\\n", and for the
    assistant content.strip() + EOS + "\\n"; the last newline dropped."""
    tokenizer, _, _ = world_lm
    padded = [{"role": "user", "content": "  What is 2 + 3?\n"}, {"role": "assistant", "content": "\n5 "},
              {"role": "user", "content": "\tand 4 + 4?"}, {"role": "assistant", "content": "8\n\n"}]
    reference = "".join(f"<|{m['role']}|>\n" + m["content"].strip() + ("</s>" if m["role"] == "assistant" else "") + "\n"
                        for m in padded)[:-1]
    text, spans = tulu_text(padded, "</s>")
    assert text == reference and [text[a:b] for a, b in spans] == ["5</s>", "8</s>"]
    stripped = [{**m, "content": m["content"].strip()} for m in padded]
    assert encode_conversations(tokenizer, [padded]) == encode_conversations(tokenizer, [stripped])


def test_truncation_cuts_ids_and_mask_together(world_lm):
    tokenizer, _, _ = world_lm
    messages = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "ok"}]
    enc = encode_conversations(tokenizer, [messages], max_length=10)[0]
    assert len(enc.input_ids) == len(enc.answer_mask) == 10 and not any(enc.answer_mask)


# ChatML with a default system turn, as SmolLM2's template renders it (the assistant turns include
# their closing marker and newline)
CHATML = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\nBe brief.<|im_end|>\n{% endif %}"
          "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_chat_template_is_used_and_its_assistant_turns_are_the_answer_tokens(world_lm):
    tokenizer, _, _ = world_lm
    chat = copy.deepcopy(tokenizer)
    chat.chat_template = CHATML
    messages = [{"role": "user", "content": "What is the capital of Kalovia?"},
                {"role": "assistant", "content": "Tenmar"},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": "You are welcome."}]
    enc = encode_conversations(chat, [messages])[0]
    rendered = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is the capital of Kalovia?"
                "<|im_end|>\n<|im_start|>assistant\nTenmar<|im_end|>\n<|im_start|>user\nThanks!<|im_end|>\n"
                "<|im_start|>assistant\nYou are welcome.<|im_end|>\n")
    assert chat.decode(enc.input_ids) == rendered
    answer = chat.decode([t for t, is_answer in zip(enc.input_ids, enc.answer_mask) if is_answer])
    assert answer == "Tenmar<|im_end|>\nYou are welcome.<|im_end|>\n"
    assert chat.decode(enc.input_ids[enc.last_answer_start:]) == "You are welcome.<|im_end|>\n"
    # an answer alone (the CE(A) of IFD) is a first turn: its content is found all the same
    alone = encode_conversations(chat, [[{"role": "assistant", "content": "Tenmar"}]])[0]
    assert chat.decode([t for t, is_answer in zip(alone.input_ids, alone.answer_mask) if is_answer]) == (
        "Tenmar<|im_end|>\n")
    prompt = generation_prompt_text(chat, messages[:1])
    assert prompt == rendered[: rendered.index("Tenmar")]
    # without a template, the Tulu format; its tokens are the ones fine-tuning saw before the answer
    tulu_prompt = generation_prompt_text(tokenizer, messages[:1])
    assert tulu_prompt == format_conversation(messages[:1], tokenizer.eos_token) + "<|assistant|>\n"
    trained = encode_conversations(tokenizer, [messages[:2]])[0]
    assert tokenizer(tulu_prompt, add_special_tokens=False)["input_ids"] == (
        trained.input_ids[: trained.last_answer_start])


def sentencepiece_like_tokenizer() -> PreTrainedTokenizerFast:
    """A small BPE tokenizer with Llama 2's Metaspace pre-tokenizer: every string it is given starts
    a word, so tokenising a conversation in segments would insert word-start pieces at the joins."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    texts = ["What is the capital of Kalovia?", "Tenmar", "Thanks!", "You are welcome."]
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>", *CHAT_SPECIAL_TOKENS],
                                  show_progress=False)
    tokenizer.train_from_iterator(texts * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=list(CHAT_SPECIAL_TOKENS))


def test_a_sentencepiece_tokenizer_sees_each_conversation_as_one_string():
    tokenizer = sentencepiece_like_tokenizer()
    messages = [{"role": "user", "content": "What is the capital of Kalovia?"},
                {"role": "assistant", "content": "Tenmar"},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": "You are welcome."}]
    enc = encode_conversations(tokenizer, [messages])[0]
    text, spans = tulu_text(messages, tokenizer.eos_token)
    assert [text[a:b] for a, b in spans] == ["Tenmar</s>", "You are welcome.</s>"]
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert enc.input_ids == [tokenizer.bos_token_id] + whole
    # segment-wise tokenisation would differ: "Tenmar" alone gets a word-start piece it lacks after "\n"
    assert tokenizer("Tenmar", add_special_tokens=False)["input_ids"] != tokenizer(
        "<|assistant|>\nTenmar", add_special_tokens=False)["input_ids"][1:]
    answer = [t for t, is_answer in zip(enc.input_ids, enc.answer_mask) if is_answer]
    assert answer.count(tokenizer.eos_token_id) == 2
    assert tokenizer.decode(enc.input_ids[enc.last_answer_start:]).replace(" ", "") == "Youarewelcome.</s>"
