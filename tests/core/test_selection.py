"""Majority vote with task equivalence, abstentions and deterministic ties."""

from __future__ import annotations

from recursa import Candidate, get_task
from recursa.selection import cluster_answers, majority_vote, random_member


def cands(*answers: str | None) -> list[Candidate]:
    return [
        Candidate(step=1, slot=i, text=f"text {i} {a}", answer=a) for i, a in enumerate(answers)
    ]


def test_math_equivalence_merges_forms_of_the_same_number() -> None:
    math = get_task("math")
    chosen, share = majority_vote(math, cands("0.5", "\\frac{1}{2}", "3", "\\dfrac{1}{2}"), 0, "p")
    assert chosen.answer == "0.5"
    assert share == 0.75


def test_rg_does_not_merge_order_sensitive_answers() -> None:
    rg = get_task("rg")
    clusters = cluster_answers(rg, ["A B C", "C B A", "U R U'", "U' R U", "A B C"])
    assert [len(c.members) for c in clusters] == [2, 1, 1, 1]


def test_missing_answers_do_not_vote_unless_none_has_one() -> None:
    math = get_task("math")
    chosen, _ = majority_vote(math, cands(None, None, None, "4"), 0, "p")
    assert chosen.answer == "4"
    chosen, _ = majority_vote(math, cands(None, None), 0, "p")
    assert chosen.answer is None


def test_ties_are_broken_deterministically_from_the_seed() -> None:
    math = get_task("math")
    pool = cands("1", "2", "3", "4")
    picks = {seed: majority_vote(math, pool, seed, "p")[0].answer for seed in range(20)}
    again = {seed: majority_vote(math, pool, seed, "p")[0].answer for seed in range(20)}
    assert picks == again
    assert len(set(picks.values())) > 1  # the seed, not position, breaks ties


def test_random_member_is_fixed_by_seed() -> None:
    pool = cands("1", "2", "3", "4")
    assert random_member(pool, 3, "p") is random_member(pool, 3, "p")
    assert len({random_member(pool, s, "p").slot for s in range(30)}) > 1
