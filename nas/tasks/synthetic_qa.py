"""Synthetic SQuAD 2.0-style data, generated in code: no external text, deterministic by seed.

A context is 3-6 fact sentences of six tokens each about 2-3 people, who share the same 2-3
relations (names, places, foods... are invented words built from syllables)::

    zorba lives in the kelmar . mirel owns a vesu tavik . mirel lives in the dosan .

Questions ask for one relation of one person ("where does mirel live ?" -> "dosan", "what does
mirel own ?" -> "vesu tavik"). As every relation is stated for several people, a model has to
match the person; unanswerable questions ask about a person who is not in the context, or about
a relation the context states for someone else but not for that person. Every word is in
:func:`vocabulary`, so ``nas.tasks.vocab.build_tokenizer(vocabulary(seed))`` tokenizes each word as
one token.

Learnability (measured on a 2-core CPU; BertForQuestionAnswering from scratch, hidden 128,
n_train 3000, unanswerable 0.5, AdamW lr 1e-3, batch 32, warmup 10% then linear decay, eval EM
on the 400 eval questions): with ``initializer_range: 0.1`` and dropout 0, 4 layers reach
82-98% after 1000-1500 steps (about a minute), 2 layers 87-100% after 1000-3500 steps. With
BERT's defaults (initializer_range 0.02, dropout 0.1), 2 layers are at 64% after 2300 steps,
barely above the 50% that "no answer" to everything scores: matching a person's name across
question and context is learnt late. Untrained models score 0-8%.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.config import SyntheticConfig
from nas.tasks.base import QAExample, Splits
from nas.tasks.squad_v2 import SquadV2Task
from nas.tasks.vocab import build_tokenizer

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "n", "r", "l", "s")
# How many invented words each category has. Few names make name matching learnable quickly.
CATEGORY_SIZES = {
    "name": 6,
    "place": 24,
    "work": 16,
    "color": 8,
    "object": 24,
    "food": 16,
    "instrument": 12,
}
QUESTIONS_PER_CONTEXT = 2
PUNCTUATION = (".", "?")


@dataclass(frozen=True)
class Relation:
    """A fact template, its question templates and the word categories of its answer."""

    key: str
    fact: str  # "{e}" is the person, "{a}" the answer span
    questions: tuple[str, ...]
    answer: tuple[str, ...]  # categories of the answer's words, in order


RELATIONS = (
    Relation(
        "home",
        "{e} lives in the {a} .",
        ("where does {e} live ?",),
        ("place",),
    ),
    Relation(
        "work",
        "{e} works at the {a} .",
        ("where does {e} work ?",),
        ("work",),
    ),
    Relation(
        "owns",
        "{e} owns a {a} .",
        ("what does {e} own ?",),
        ("color", "object"),
    ),
    Relation(
        "food",
        "{e} likes to eat {a} .",
        ("what does {e} eat ?",),
        ("food",),
    ),
    Relation(
        "music",
        "{e} likes to play {a} .",
        ("what does {e} play ?",),
        ("instrument",),
    ),
)


def _template_words() -> list[str]:
    words: list[str] = []
    for relation in RELATIONS:
        for template in (relation.fact, *relation.questions):
            for word in template.split():
                if not word.startswith("{") and word not in PUNCTUATION and word not in words:
                    words.append(word)
    return words


def invented_words(seed: int = 0) -> dict[str, list[str]]:
    """Invented words per category (``CATEGORY_SIZES``), distinct across categories and from
    the template words; deterministic by ``seed``."""
    rng = random.Random(f"nas.synthetic_qa/{seed}/vocabulary")
    taken = set(_template_words())
    result: dict[str, list[str]] = {}
    for category, size in CATEGORY_SIZES.items():
        words: list[str] = []
        while len(words) < size:
            n_syllables = rng.choice((2, 2, 3))
            word = "".join(
                rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                for _ in range(n_syllables)
            )
            if word not in taken and len(word) >= 4:
                taken.add(word)
                words.append(word)
        result[category] = words
    return result


def vocabulary(seed: int = 0) -> list[str]:
    """Every word (and punctuation mark) :func:`generate` can emit with ``config.seed == seed``."""
    words = _template_words() + list(PUNCTUATION)
    for category_words in invented_words(seed).values():
        words.extend(category_words)
    return words


@dataclass(frozen=True)
class _Fact:
    person: str
    relation: Relation
    answer: str


def _facts(rng: random.Random, words: dict[str, list[str]]) -> list[_Fact]:
    """Facts about 2-3 people sharing 2-3 relations (all pairs, sometimes one dropped), shuffled.

    Two people get 2-3 relations, three people 2, so a context has 3-6 facts.
    """
    people = rng.sample(words["name"], rng.randint(2, 3))
    relations = rng.sample(RELATIONS, 2 if len(people) == 3 else rng.randint(2, 3))
    slots = [(p, r) for p in people for r in relations]
    chosen = rng.sample(slots, len(slots) - rng.randint(0, 1))
    facts = []
    for person, relation in chosen:
        answer = " ".join(rng.choice(words[category]) for category in relation.answer)
        facts.append(_Fact(person, relation, answer))
    return facts


def _render(facts: list[_Fact]) -> tuple[str, list[int]]:
    """The context text and each fact's answer character offset."""
    sentences, starts, offset = [], [], 0
    for fact in facts:
        before = fact.relation.fact.split("{a}")[0].format(e=fact.person)
        sentence = fact.relation.fact.format(e=fact.person, a=fact.answer)
        starts.append(offset + len(before))
        sentences.append(sentence)
        offset += len(sentence) + 1
    return " ".join(sentences), starts


def _unanswerable(
    rng: random.Random, facts: list[_Fact], words: dict[str, list[str]]
) -> tuple[str, Relation]:
    """A (person, relation) the context does not state.

    Half the time (when possible) the person is in the context and the relation is stated for
    someone else; otherwise the person is absent and the relation is one the context uses.
    """
    stated = {(f.person, f.relation.key) for f in facts}
    people = sorted({f.person for f in facts})
    hard = [
        (p, f.relation)
        for p in people
        for f in facts
        if f.person != p and (p, f.relation.key) not in stated
    ]
    if hard and rng.random() < 0.5:
        return rng.choice(hard)
    absent = rng.choice([w for w in words["name"] if w not in people])
    return absent, rng.choice(facts).relation


def _questions(
    rng: random.Random, facts: list[_Fact], answerable: list[bool], words: dict[str, list[str]]
) -> list[tuple[str, str | None, int]]:
    """(question, answer or None, answer start) per flag; no (person, relation) asked twice."""
    asked: set[tuple[str, str]] = set()
    out: list[tuple[str, str | None, int]] = []
    _, starts = _render(facts)
    while len(out) < len(answerable):
        if answerable[len(out)]:
            index = rng.randrange(len(facts))
            person, relation = facts[index].person, facts[index].relation
            answer: str | None = facts[index].answer
            start = starts[index]
        else:
            (person, relation), answer, start = _unanswerable(rng, facts, words), None, -1
        if (person, relation.key) not in asked:
            asked.add((person, relation.key))
            out.append((rng.choice(relation.questions).format(e=person), answer, start))
    return out


def _flags(rng: random.Random, n: int, unanswerable_fraction: float) -> list[bool]:
    """``n`` answerable flags with exactly ``round(n * fraction)`` False, shuffled."""
    n_unanswerable = round(n * unanswerable_fraction)
    flags = [False] * n_unanswerable + [True] * (n - n_unanswerable)
    rng.shuffle(flags)
    return flags


def _split(
    config: SyntheticConfig, name: str, n: int, avoid: set[str], words: dict[str, list[str]]
) -> tuple[list[QAExample], set[str]]:
    """``n`` examples, ``QUESTIONS_PER_CONTEXT`` per context; contexts in ``avoid`` are skipped."""
    rng = random.Random(f"nas.synthetic_qa/{config.seed}/{name}")
    flags = _flags(rng, n, config.unanswerable_fraction)
    examples: list[QAExample] = []
    contexts: set[str] = set()
    while len(examples) < n:
        facts = _facts(rng, words)
        context, _ = _render(facts)
        if context in avoid or context in contexts:
            continue
        contexts.add(context)
        title = f"synthetic-{name}-{len(contexts) - 1}"
        batch = flags[len(examples) : len(examples) + QUESTIONS_PER_CONTEXT]
        for question, answer, start in _questions(rng, facts, batch, words):
            qid = f"synthetic-{config.seed}-{name}-{len(examples):06d}"
            answers = (answer,) if answer is not None else ()
            starts = (start,) if answer is not None else ()
            examples.append(QAExample(qid, title, context, question, answers, starts))
    return examples, contexts


def generate(
    config: SyntheticConfig,
) -> tuple[list[QAExample], list[QAExample], list[QAExample]]:
    """Train, selection (``eval``) and test examples for ``config`` (sizes, seed, unanswerable
    fraction).

    Each split comes from its own derived seed with the same vocabulary
    (``vocabulary(config.seed)``) and shares no context with the splits before it. Titles group
    the questions of one context (``synthetic-train-<k>``, ``synthetic-eval-<k>``,
    ``synthetic-test-<k>``).
    """
    if not 0.0 <= config.unanswerable_fraction <= 1.0:
        raise ValueError(
            f"synthetic.unanswerable_fraction = {config.unanswerable_fraction} must be in [0, 1]"
        )
    words = invented_words(config.seed)
    train, train_contexts = _split(config, "train", config.n_train, set(), words)
    evals, eval_contexts = _split(config, "eval", config.n_eval, train_contexts, words)
    test: list[QAExample] = []
    if config.n_test:
        test, _ = _split(config, "test", config.n_test, train_contexts | eval_contexts, words)
    return train, evals, test


def describe(config: SyntheticConfig) -> dict[str, Any]:
    """A short provenance record for ``Splits.description`` and reports."""
    return {
        "generator": "nas.tasks.synthetic_qa",
        "seed": config.seed,
        "n_train": config.n_train,
        "n_eval": config.n_eval,
        "n_test": config.n_test,
        "unanswerable_fraction": config.unanswerable_fraction,
        "relations": [r.key for r in RELATIONS],
    }


class SyntheticQATask(SquadV2Task):
    """``synthetic_qa``: SQuAD 2.0-format questions generated from ``data.synthetic``.

    Encoding, decoding and scoring are SQuAD 2.0's. ``offline_tokenizer`` gives a tokenizer in
    which every generated word is one token, for teachers trained from scratch.
    """

    name: ClassVar[str] = "synthetic_qa"
    hub_name: ClassVar[str | None] = None

    def load(self, data: Any) -> Splits:
        train, evals, test = generate(data.synthetic)
        info = describe(data.synthetic)
        text = (
            f"synthetic_qa seed {info['seed']}: {len(train)} train / {len(evals)} selection / "
            f"{len(test)} test questions, {info['unanswerable_fraction']:.0%} unanswerable"
        )
        return Splits(train=train, eval=evals, description=text, test=test)

    def offline_tokenizer(self, data: Any) -> Any:
        return build_tokenizer(vocabulary(data.synthetic.seed))
