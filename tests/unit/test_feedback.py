from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.feedback import (
    Idea,
    RatingSummary,
    nps,
    nps_bucket,
    rating_summary,
    summarise_voice,
    sus_score,
    themes,
)


def test_sus_all_neutral_answers_score_50() -> None:
    assert sus_score([3] * 10) == 50.0


def test_sus_best_answers_score_100_and_worst_score_0() -> None:
    assert sus_score([5, 1] * 5) == 100.0
    assert sus_score([1, 5] * 5) == 0.0


def test_sus_scores_odd_items_as_answer_minus_one_and_even_items_as_five_minus_answer() -> None:
    # item scores: 3, 3, 2, 1, 4, 0, 3, 4, 0, 2 -> 22 x 2.5
    assert sus_score([4, 2, 3, 4, 5, 5, 4, 1, 1, 3]) == 55.0


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([3] * 9, r"len\(answers\) == 9, must be 10"),
        ([3] * 9 + [6], r"answers\[9\] == 6, must be an integer from 1 to 5"),
        ([0] + [3] * 9, r"answers\[0\] == 0"),
    ],
)
def test_sus_rejects_malformed_answers(answers: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sus_score(answers)


@given(st.lists(st.integers(1, 5), min_size=10, max_size=10))
def test_sus_lies_in_0_100_on_a_2_5_grid(answers: list[int]) -> None:
    score = sus_score(answers)
    assert 0.0 <= score <= 100.0
    assert (score / 2.5).is_integer()


@pytest.mark.parametrize(
    ("score", "bucket"),
    [(0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter"), (10, "promoter")],
)
def test_nps_bucket_boundaries(score: int, bucket: str) -> None:
    assert nps_bucket(score) == bucket


@pytest.mark.parametrize("score", [-1, 11])
def test_nps_bucket_rejects_scores_outside_0_10(score: int) -> None:
    with pytest.raises(ValueError, match=f"score == {score}"):
        nps_bucket(score)


def test_nps_is_promoters_minus_detractors_in_percent_of_respondents() -> None:
    assert nps(50, 30, 20) == pytest.approx(30.0)
    assert nps(10, 0, 0) == 100.0
    assert nps(0, 0, 4) == -100.0
    assert nps(1, 2, 1) == 0.0


def test_nps_rejects_no_respondents_and_negative_counts() -> None:
    with pytest.raises(ValueError, match=r"promoters \+ passives \+ detractors == 0, must be >= 1"):
        nps(0, 0, 0)
    with pytest.raises(ValueError, match="passives == -1, must be >= 0"):
        nps(3, -1, 0)


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_nps_lies_in_minus_100_100(promoters: int, passives: int, detractors: int) -> None:
    if promoters + passives + detractors == 0:
        return
    assert -100.0 <= nps(promoters, passives, detractors) <= 100.0


def test_rating_summary_gives_mean_and_counts_of_each_star() -> None:
    summary = rating_summary({5: 3, 4: 1, 1: 1})
    assert summary == RatingSummary(respondents=5, mean=(1 + 4 + 3 * 5) / 5, counts=(1, 0, 0, 1, 3))


def test_rating_summary_without_ratings_has_no_mean() -> None:
    assert rating_summary({}) == RatingSummary(0, None, (0, 0, 0, 0, 0))


def test_rating_summary_rejects_ratings_outside_1_5() -> None:
    with pytest.raises(ValueError, match="rating == 6"):
        rating_summary({6: 1})


def test_themes_match_accents_and_plurals_and_show_the_most_frequent_spelling() -> None:
    found = dict(themes(["Le vélo est rapide", "les vélos électriques", "velo cassé", "mon vélo"]))
    assert found["vélo"] == 4
    assert "velo" not in found and "vélos" not in found


def test_themes_drop_english_and_french_stopwords_and_elisions() -> None:
    found = dict(themes(["The app is the best of all", "L'application est très pratique pour moi"]))
    assert set(found) == {"app", "best", "application", "pratique"}


def test_themes_count_texts_not_occurrences() -> None:
    found = dict(themes(["bus bus bus bus", "tram"]))
    assert found == {"bus": 1, "tram": 1}


def test_themes_find_two_word_phrases_used_by_several_texts_and_drop_words_they_cover() -> None:
    ranked = themes(
        [
            "Need more bike lanes",
            "bike lanes are unsafe at night",
            "The bike lane on Main street",
            "a bike for kids",
        ],
        top=3,
    )
    assert ranked[0] == ("bike", 4)
    assert ranked[1] == ("bike lanes", 3)
    assert ("lanes", 3) not in ranked


def test_themes_phrases_never_bridge_a_stopword() -> None:
    found = dict(themes(["piste de vélo", "piste de vélo"]))
    assert "piste vélo" not in found
    assert found == {"piste": 2, "vélo": 2}


def test_themes_keep_only_the_top_ones_and_break_ties_alphabetically() -> None:
    assert themes(["zebra crossing", "apple", "zebra"], top=2) == [("zebra", 2), ("apple", 1)]


def test_themes_reject_a_non_positive_top() -> None:
    with pytest.raises(ValueError, match="top == 0, must be >= 1"):
        themes(["x"], top=0)


def test_summarise_voice_gathers_every_score() -> None:
    summary = summarise_voice(
        promoters=6,
        passives=2,
        detractors=2,
        sus_scores=[70.0, 80.0],
        rating_counts={4: 2, 5: 2},
        comments=["Great bikes", "bikes too heavy"],
        ideas=[Idea("More stations north", 3), Idea("Night bikes", 12), Idea("Kids seats", 7)],
        top_ideas=2,
    )
    assert summary.nps == pytest.approx(40.0)
    assert summary.nps_respondents == 10
    assert summary.sus_mean == pytest.approx(75.0)
    assert summary.sus_respondents == 2
    assert summary.rating.mean == pytest.approx(4.5)
    assert (summary.comment_count, summary.idea_count) == (2, 3)
    assert summary.themes[0] == ("bikes", 3)
    assert summary.top_ideas == (Idea("Night bikes", 12), Idea("Kids seats", 7))


def test_summarise_voice_without_feedback_has_no_scores() -> None:
    summary = summarise_voice()
    assert (summary.nps, summary.sus_mean, summary.rating.mean) == (None, None, None)
    assert summary.themes == () and summary.top_ideas == ()


def test_summarise_voice_rejects_sus_scores_outside_0_100() -> None:
    with pytest.raises(ValueError, match=r"sus_scores\[1\] == 120"):
        summarise_voice(sus_scores=[50.0, 120.0])
