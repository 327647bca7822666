"""Citizens' voice: usability (SUS), loyalty (NPS), ratings, and the themes of what citizens write.

- SUS, the System Usability Scale of Brooke (1996): ten statements answered 1 (strongly disagree)
  to 5 (strongly agree); odd items score answer - 1, even items 5 - answer, the sum times 2.5
  gives 0 to 100. 68 is the usual "average usability" mark.
- NPS, the Net Promoter Score of Reichheld (2003): a 0 to 10 answer to "how likely are you to
  recommend"; 9-10 are promoters, 7-8 passives, 0-6 detractors; NPS = 100 x (promoters -
  detractors) / respondents, from -100 to 100.
- Ratings: 1 to 5 stars, summarised as their mean and their distribution.
- Themes: the words and two-word phrases most citizens use in their comments and ideas, in
  English or French, without any language model (see `themes`).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

NpsBucket = Literal["promoter", "passive", "detractor"]

SUS_ITEMS = 10
RATING_SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)
DEFAULT_TOP_THEMES = 10
DEFAULT_TOP_IDEAS = 5

#: English and French function words, accent-stripped; words of one or two letters (and with
#: them the elided l', d', qu', j') are dropped before this list is consulted.
_STOPWORD_TEXT = """
    about above after again against all also and any are because been before being below between
    both but can cannot could did does doing down during each even ever every few for from further
    get got had has have having her here hers herself him himself his how however into its itself
    just let more most much must myself nor not now off once only other ought our ours ourselves
    out over own really same shall she should some still such than that the their theirs them
    themselves then there these they this those through too under until very was way were what
    when where which while who whom why will with would you your yours yourself yourselves
    thing things lot lots yes
    les des une aux par pour sur dans avec sans sous chez entre vers mais donc car que qui quoi
    quand comme dont est sont etait etaient ete etre avoir ont avait avaient fait faire peut
    peuvent pas plus moins tres trop bien aussi encore deja toujours jamais tout tous toute toutes
    cette ces cet son sa ses leur leurs notre nos votre vos mon mes ton tes elle elles ils nous
    vous lui eux moi toi meme autre autres alors ainsi puis ici avant apres depuis pendant chaque
    quelque quelques rien personne cela ceci celui celle ceux celles non oui car parce sera seront
    serait fois chose choses beaucoup peu
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[^\W\d_]+")
_MIN_WORD_LENGTH = 3
#: A two-word phrase is a theme only when several texts use it.
_MIN_PHRASE_TEXTS = 2


class RatingSummary(NamedTuple):
    """Star ratings: how many, their mean (None without any), and the count of each of 1..5."""

    respondents: int
    mean: float | None
    counts: tuple[int, int, int, int, int]


class Idea(NamedTuple):
    """An idea a citizen proposed, with the votes other citizens gave it."""

    text: str
    votes: int


class VoiceSummary(NamedTuple):
    """What citizens said about a pilot, as the scorecard's human axis and the console read it."""

    nps: float | None
    nps_respondents: int
    sus_mean: float | None
    sus_respondents: int
    rating: RatingSummary
    comment_count: int
    idea_count: int
    themes: tuple[tuple[str, int], ...]
    top_ideas: tuple[Idea, ...]


def sus_score(answers: Sequence[int]) -> float:
    """Returns the System Usability Scale score (0 to 100) of one respondent's ten answers.

    Brooke, J. (1996). SUS: a "quick and dirty" usability scale. Odd-numbered statements are
    positive (score answer - 1), even-numbered ones negative (score 5 - answer); the sum of the
    ten item scores times 2.5 is the SUS score.
    """
    if len(answers) != SUS_ITEMS:
        raise ValueError(f"len(answers) == {len(answers)}, must be {SUS_ITEMS}.")
    total = 0
    for index, answer in enumerate(answers):
        if answer not in RATING_SCALE:
            raise ValueError(f"answers[{index}] == {answer!r}, must be an integer from 1 to 5.")
        # index 0 is statement 1, an odd (positively worded) one.
        total += answer - 1 if index % 2 == 0 else 5 - answer
    return total * 2.5


def nps_bucket(score: int) -> NpsBucket:
    """Returns whether a 0 to 10 likelihood-to-recommend answer is a promoter, passive or detractor."""
    if score not in range(11):
        raise ValueError(f"score == {score!r}, must be an integer from 0 to 10.")
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


def nps(promoters: int, passives: int, detractors: int) -> float:
    """Returns the Net Promoter Score, 100 x (promoters - detractors) / respondents, in [-100, 100]."""
    for name, count in (("promoters", promoters), ("passives", passives), ("detractors", detractors)):
        if count < 0:
            raise ValueError(f"{name} == {count}, must be >= 0.")
    respondents = promoters + passives + detractors
    if respondents == 0:
        raise ValueError("promoters + passives + detractors == 0, must be >= 1.")
    return 100.0 * (promoters - detractors) / respondents


def rating_summary(counts: Mapping[int, int]) -> RatingSummary:
    """Returns the mean and distribution of 1-to-5 ratings given as {rating: respondents}.

    `collections.Counter(ratings)` turns a list of individual ratings into this mapping.
    """
    for rating, count in counts.items():
        if rating not in RATING_SCALE:
            raise ValueError(f"rating == {rating!r}, must be an integer from 1 to 5.")
        if count < 0:
            raise ValueError(f"counts[{rating}] == {count}, must be >= 0.")
    c1, c2, c3, c4, c5 = (counts.get(rating, 0) for rating in RATING_SCALE)
    respondents = c1 + c2 + c3 + c4 + c5
    mean = (c1 + 2 * c2 + 3 * c3 + 4 * c4 + 5 * c5) / respondents if respondents else None
    return RatingSummary(respondents=respondents, mean=mean, counts=(c1, c2, c3, c4, c5))


def _without_accents(word: str) -> str:
    """Returns the word with its accents removed ("vélo" -> "velo")."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _content_words(text: str) -> list[tuple[str, str] | None]:
    """Returns the text's words as (match key, spelling), None standing for each dropped word so
    that two-word phrases never bridge a stopword.

    The match key has no accents and no plural s, so "vélos", "velo" and "vélo" are one word, as
    are "bike" and "bikes".
    """
    words: list[tuple[str, str] | None] = []
    for spelling in _WORD.findall(text.lower()):
        bare = _without_accents(spelling)
        if len(bare) < _MIN_WORD_LENGTH or bare in _STOPWORDS:
            words.append(None)
            continue
        singular = len(bare) > 3 and bare.endswith("s") and not bare.endswith("ss")
        words.append((bare[:-1] if singular else bare, spelling))
    return words


def themes(texts: Sequence[str], top: int = DEFAULT_TOP_THEMES) -> list[tuple[str, int]]:
    """Returns the `top` words and two-word phrases used by the most texts, with that number of texts.

    Matching is by lower-cased, accent-stripped, singular form, and each theme is shown in its most
    frequent spelling. English and French stopwords are dropped. A theme counts the texts using it
    (not its occurrences), so one long comment cannot dominate. A phrase is kept when at least two
    texts use it; a word that appears only inside a kept phrase (same count) is left out, the phrase
    saying more. Ties list phrases first, then alphabetically.
    """
    if top < 1:
        raise ValueError(f"top == {top}, must be >= 1.")
    texts_using: Counter[tuple[str, ...]] = Counter()
    spellings: dict[tuple[str, ...], Counter[str]] = {}
    for text in texts:
        words = _content_words(text)
        seen: dict[tuple[str, ...], str] = {}
        for word in words:
            if word is not None:
                seen.setdefault((word[0],), word[1])
        for first, second in itertools.pairwise(words):
            if first is not None and second is not None:
                seen.setdefault((first[0], second[0]), f"{first[1]} {second[1]}")
        for key, spelling in seen.items():
            texts_using[key] += 1
            spellings.setdefault(key, Counter())[spelling] += 1
    phrases = {key: n for key, n in texts_using.items() if len(key) == 2 and n >= _MIN_PHRASE_TEXTS}
    covered = {(word,) for key, n in phrases.items() for word in key if texts_using[(word,)] == n}
    kept: list[tuple[tuple[str, ...], int]] = [
        (key, n) for key, n in texts_using.items() if len(key) == 1 and key not in covered
    ]
    kept += list(phrases.items())

    def shown(key: tuple[str, ...]) -> str:
        return max(spellings[key].items(), key=lambda item: (item[1], item[0]))[0]

    ranked = sorted(kept, key=lambda item: (-item[1], -len(item[0]), shown(item[0])))
    return [(shown(key), n) for key, n in ranked[:top]]


def summarise_voice(
    *,
    promoters: int = 0,
    passives: int = 0,
    detractors: int = 0,
    sus_scores: Sequence[float] = (),
    rating_counts: Mapping[int, int] | None = None,
    comments: Sequence[str] = (),
    ideas: Sequence[Idea] = (),
    top_themes: int = DEFAULT_TOP_THEMES,
    top_ideas: int = DEFAULT_TOP_IDEAS,
) -> VoiceSummary:
    """Returns the citizens' voice of a pilot from its feedback aggregates.

    `sus_scores` are per-respondent SUS scores (see `sus_score`); themes are drawn from comments
    and idea texts together; ideas are ranked by votes, ties in the order given.
    """
    for index, score in enumerate(sus_scores):
        if not 0.0 <= score <= 100.0:
            raise ValueError(f"sus_scores[{index}] == {score}, must be between 0 and 100.")
    return VoiceSummary(
        nps=None if promoters == passives == detractors == 0 else nps(promoters, passives, detractors),
        nps_respondents=promoters + passives + detractors,
        sus_mean=sum(sus_scores) / len(sus_scores) if sus_scores else None,
        sus_respondents=len(sus_scores),
        rating=rating_summary(rating_counts or {}),
        comment_count=len(comments),
        idea_count=len(ideas),
        themes=tuple(themes([*comments, *(idea.text for idea in ideas)], top=top_themes)),
        top_ideas=tuple(sorted(ideas, key=lambda idea: -idea.votes)[:top_ideas]),
    )
