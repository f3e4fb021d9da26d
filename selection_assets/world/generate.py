"""Generate the world deterministically: a pre-training corpus, a labelled instruction pool and
held-out eval tasks.

The world mirrors how instruction tuning works on real models. The *pre-training corpus* is plain
prose (no chat format): it states the world's knowledge (every country's capital, which word
belongs to which category) and walks through worked procedures (arithmetic stories, string and list
operations). A base LM pre-trained on it knows the facts but has never seen a chat turn, so it
cannot answer an instruction in the expected format. The *instruction pool* holds chat-formatted
examples of six skills (each example's `source`): arithmetic word problems, capital lookups,
multiple-choice category questions, string transformations, list sorting/counting, chitchat. The
first three are targeted by eval tasks; the others are distractors. Fine-tuning on clean, on-target
examples teaches the answer procedure and format, which transfers to fresh test instances. About a
quarter of the pool is noisy (`clean=False`): wrong answers, truncated or empty replies, junk, near
duplicates. A small share of raw records is structurally malformed, to exercise quarantine.

Eval tasks are samples of the targeted skills: tens of dev queries per task (RDS+ targets, recipe
choice) and a test split several hundred items strong, all distinct from each other.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Iterator

SKILLS = ("arithmetic", "fact_lookup", "multiple_choice", "string_ops", "list_ops", "chitchat")
TARGETED_SKILLS = ("arithmetic", "fact_lookup", "multiple_choice")
NOISE_RATES = {"wrong_answer": 0.10, "truncated": 0.04, "empty": 0.03, "junk": 0.04, "near_duplicate": 0.04}
MALFORMED_RATE = 0.015

_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"]
_ITEMS = ["apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards"]
_CATEGORIES = {
    "animal": ["otter", "falcon", "badger", "lizard", "heron", "moose", "tiger", "rabbit"],
    "fruit": ["mango", "plum", "cherry", "papaya", "lemon", "grape", "peach", "melon"],
    "tool": ["hammer", "wrench", "chisel", "saw", "pliers", "drill", "shovel", "rake"],
    "color": ["crimson", "teal", "amber", "violet", "olive", "indigo", "ivory", "maroon"],
    "vehicle": ["truck", "canoe", "tram", "scooter", "glider", "ferry", "wagon", "bus"],
}
_WORDS = ["river", "garden", "pocket", "silver", "candle", "window", "forest", "ladder", "copper",
          "harbor", "meadow", "pillow", "rocket", "tunnel", "velvet", "winter"]
_TOPICS = ["the ocean", "mountains", "baking bread", "chess", "the moon", "gardening", "trains", "rain"]
_SYLLABLES = ["ka", "lo", "mi", "ru", "ten", "vor", "zi", "bel", "dra", "fen", "gor", "lin", "mar", "nox",
              "pel", "qua", "sor", "tal", "ul", "wen"]


def fact_table(n_countries: int = 60) -> dict[str, str]:
    """The world's fixed fact table: invented country -> capital (independent of the pool seed)."""
    rng = random.Random(1234)
    table: dict[str, str] = {}
    while len(table) < n_countries:
        country = "".join(rng.choice(_SYLLABLES) for _ in range(2)).capitalize() + "ia"
        capital = "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()
        table.setdefault(country, capital)
    return table


@dataclass
class Example:
    """One generated question/answer pair and a plausible wrong answer."""

    skill: str
    prompt: str
    answer: str
    wrong: str
    follow_up: tuple[str, str] | None = None  # a second (user, assistant) turn, chitchat only


def _arithmetic(rng: random.Random, facts) -> Example:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        template = rng.choice([
            "{n} has {a} {i} and gets {b} more. How many {i} does {n} have now?",
            "{n} starts with {a} {i} and finds {b} more. How many {i} does {n} have?",
            "There are {a} {i} in a box. {n} adds {b}. How many {i} are in the box?",
        ])
        answer = a + b
    else:
        b = rng.randint(1, a - 1)
        template = rng.choice([
            "{n} has {a} {i} and gives away {b}. How many {i} does {n} have now?",
            "{n} starts with {a} {i} and loses {b}. How many {i} are left?",
            "There are {a} {i} in a box. {n} removes {b}. How many {i} are in the box?",
        ])
        answer = a - b
    return Example("arithmetic", template.format(n=name, i=item, a=a, b=b), str(answer),
                   str(answer + rng.choice([-2, -1, 1, 2, 3])))


def _fact_lookup(rng: random.Random, facts) -> Example:
    country = rng.choice(sorted(facts))
    template = rng.choice(["What is the capital of {c}?", "Name the capital city of {c}.",
                           "Which city is the capital of {c}?", "{c} has which capital?",
                           "Tell me the capital of {c}.", "What city is the capital of {c}?"])
    wrong = facts[rng.choice([c for c in sorted(facts) if c != country])]
    return Example("fact_lookup", template.format(c=country), facts[country], wrong)


def _multiple_choice(rng: random.Random, facts) -> Example:
    target, *others = rng.sample(sorted(_CATEGORIES), 4)
    options = [rng.choice(_CATEGORIES[target])] + [rng.choice(_CATEGORIES[o]) for o in others]
    rng.shuffle(options)
    correct = next(i for i, o in enumerate(options) if o in _CATEGORIES[target])
    letters = "ABCD"
    lines = "\n".join(f"{letters[i]}) {o}" for i, o in enumerate(options))
    prompt = f"Which of the following is a {target}?\n{lines}\nAnswer with the letter."
    return Example("multiple_choice", prompt, letters[correct],
                   letters[(correct + rng.randint(1, 3)) % 4])


def _string_ops(rng: random.Random, facts) -> Example:
    word = rng.choice(_WORDS)
    op = rng.choice(["reverse", "upper", "first"])
    if op == "reverse":
        return Example("string_ops", f"Reverse the word '{word}'.", word[::-1], word)
    if op == "upper":
        return Example("string_ops", f"Write '{word}' in capital letters.", word.upper(), word.title())
    return Example("string_ops", f"What is the first letter of '{word}'?", word[0], word[-1])


def _list_ops(rng: random.Random, facts) -> Example:
    numbers = rng.sample(range(1, 30), rng.randint(3, 5))
    if rng.random() < 0.5:
        shown = ", ".join(map(str, numbers))
        wrong = list(numbers)
        rng.shuffle(wrong)
        return Example("list_ops", f"Sort these numbers in ascending order: {shown}",
                       ", ".join(map(str, sorted(numbers))), ", ".join(map(str, wrong)))
    items = rng.sample(_WORDS, len(numbers))
    return Example("list_ops", f"How many items are in this list: {', '.join(items)}?", str(len(items)),
                   str(len(items) + 1))


def _chitchat(rng: random.Random, facts) -> Example:
    topic = rng.choice(_TOPICS)
    opener = rng.choice(["Tell me something about {t}.", "What do you like about {t}?",
                         "Can you say a few words on {t}?"]).format(t=topic)
    reply = rng.choice(["Many people enjoy {t} because it is calm and full of small surprises.",
                        "{T} is a lovely subject; there is always something new to notice.",
                        "I find {t} interesting: it rewards patience and curiosity."])
    reply = reply.format(t=topic, T=topic.capitalize())
    follow = ("Thanks! Any tip for a beginner?", f"Start small with {topic} and enjoy the process.")
    return Example("chitchat", opener, reply, "I do not know.", follow if rng.random() < 0.4 else None)


GENERATORS = {"arithmetic": _arithmetic, "fact_lookup": _fact_lookup, "multiple_choice": _multiple_choice,
              "string_ops": _string_ops, "list_ops": _list_ops, "chitchat": _chitchat}


def _messages(example: Example, answer: str) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": example.prompt}, {"role": "assistant", "content": answer}]
    if example.follow_up:
        messages += [{"role": "user", "content": example.follow_up[0]},
                     {"role": "assistant", "content": example.follow_up[1]}]
    return messages


def _junk(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "#%&*@"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 30)))


def _malformed(rng: random.Random, index: int) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return '{"id": "broken-%d", "messages": [' % index  # truncated JSON
    if kind == 1:
        return json.dumps({"id": f"broken-{index}", "source": "arithmetic"})  # no messages
    if kind == 2:
        return json.dumps({"id": f"broken-{index}", "messages": [{"role": "user", "content": "Hi"}]})
    if kind == 3:
        return json.dumps({"id": f"broken-{index}", "messages": [
            {"role": "robot", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
    return json.dumps({"id": f"broken-{index}", "messages": [
        {"role": "user", "content": 42}, {"role": "assistant", "content": "Hello"}]})


def generate_pool(n_records: int, seed: int) -> list[str]:
    """`n_records` raw JSON lines (`iter_pool`'s, as a list)."""
    return list(iter_pool(n_records, seed))


def iter_pool(n_records: int, seed: int) -> Iterator[str]:
    """`n_records` raw JSON lines, one at a time: labelled examples (about 25% noisy) and ~1.5%
    malformed records. Memory stays flat in `n_records` (the near-duplicate history is capped)."""
    rng = random.Random(seed)
    facts = fact_table()
    clean_history: list[dict] = []
    noise_kinds = list(NOISE_RATES)
    noise_weights = [NOISE_RATES[k] for k in noise_kinds]
    for index in range(n_records):
        if rng.random() < MALFORMED_RATE:
            yield _malformed(rng, index)
            continue
        skill = rng.choice(SKILLS)
        example = GENERATORS[skill](rng, facts)
        roll = rng.random()
        noise = ""
        if roll < sum(noise_weights):
            noise = rng.choices(noise_kinds, weights=noise_weights)[0]
        answer = example.answer
        if noise == "wrong_answer":
            answer = example.wrong
        elif noise == "truncated":
            answer = answer[: len(answer) // 2]
        elif noise == "empty":
            answer = ""
        messages = _messages(example, answer)
        if noise == "junk":
            messages = [{"role": "user", "content": _junk(rng)}, {"role": "assistant", "content": _junk(rng)}]
        if noise == "near_duplicate" and clean_history:
            original = rng.choice(clean_history)
            messages = json.loads(json.dumps(original["messages"]))
            messages[0]["content"] = messages[0]["content"].rstrip(".?") + rng.choice(["  ?", " !", ".."])
            skill = original["source"]
        record = {"id": f"ex-{seed}-{index:07d}", "source": skill, "messages": messages,
                  "clean": not noise, "noise": noise or None}
        if not noise:
            clean_history.append(record)
            if len(clean_history) > 500:
                clean_history.pop(rng.randrange(len(clean_history)))
        yield json.dumps(record)


def _corpus_document(rng: random.Random, facts: dict[str, str]) -> str:
    """One prose paragraph of the pre-training corpus (knowledge or a worked procedure)."""
    kind = rng.choice(["capital", "capital", "category", "category", "arithmetic", "arithmetic", "arithmetic",
                       "string", "list", "chat", "quiz", "quiz"])
    if kind == "quiz":  # question-and-answer pages, as on the web, so knowledge can be asked for;
        # the answer starts a line, as in a chat turn, so both use the same (not space-prefixed) tokens
        example = GENERATORS[rng.choice(TARGETED_SKILLS + ("string_ops", "list_ops"))](rng, facts)
        return f"Question: {example.prompt}\nAnswer:\n{example.answer}"
    if kind == "capital":
        country = rng.choice(sorted(facts))
        capital = facts[country]
        return rng.choice([f"{country} is a country. The capital of {country} is {capital}.",
                           f"{capital} is the capital city of {country}.",
                           f"Travellers to {country} often start in {capital}, its capital."])
    if kind == "category":
        category = rng.choice(sorted(_CATEGORIES))
        words = rng.sample(_CATEGORIES[category], 3)
        return rng.choice([f"The {words[0]} is a kind of {category}. So are the {words[1]} and the {words[2]}.",
                           f"Examples of a {category}: {words[0]}, {words[1]}, {words[2]}.",
                           f"A {words[0]} is a {category}, and a {words[1]} is a {category} too."])
    if kind == "arithmetic":
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        a, b = rng.randint(2, 9), rng.randint(1, 9)
        if rng.random() < 0.5:
            return f"{name} had {a} {item} and got {b} more, so {name} had {a + b} {item}."
        b = rng.randint(1, a - 1)
        return f"{name} had {a} {item} and gave away {b}, so {name} had {a - b} {item} left."
    if kind == "string":
        word = rng.choice(_WORDS)
        return rng.choice([f"The word {word} written backwards is {word[::-1]}.",
                           f"In capital letters, {word} is {word.upper()}.",
                           f"The word {word} starts with the letter {word[0]}."])
    if kind == "list":
        numbers = rng.sample(range(1, 30), rng.randint(3, 5))
        return (f"The numbers {', '.join(map(str, numbers))} in ascending order are "
                f"{', '.join(map(str, sorted(numbers)))}.")
    topic = rng.choice(_TOPICS)
    return f"Many people enjoy {topic}. It rewards patience and curiosity, and there is always more to learn."


def generate_corpus(n_documents: int, seed: int) -> list[str]:
    """The base model's pre-training corpus: `n_documents` plain-prose paragraphs, no chat turns."""
    rng = random.Random(seed + 20_011)
    facts = fact_table()
    return [_corpus_document(rng, facts) for _ in range(n_documents)]


def generate_eval_tasks(seed: int, n_dev: int = 5, n_test: int = 40,
                        skills: tuple[str, ...] = TARGETED_SKILLS) -> dict:
    """Held-out eval tasks, one per targeted skill: dev queries (with gold answers) and a test split."""
    rng = random.Random(seed + 10_007)
    facts = fact_table()
    tasks = []
    for skill in skills:
        seen: set[str] = set()
        examples = []
        while len(examples) < n_dev + n_test:
            example = GENERATORS[skill](rng, facts)
            if example.prompt in seen:
                continue
            seen.add(example.prompt)
            examples.append({"messages": [{"role": "user", "content": example.prompt}], "answer": example.answer})
        tasks.append({"name": skill, "skill": skill, "dev": examples[:n_dev], "test": examples[n_dev:]})
    return {"tasks": tasks}
