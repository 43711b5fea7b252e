"""Choosing the final answer from a population: majority vote or a random member."""

from __future__ import annotations

from dataclasses import dataclass

from recursa.hashing import stable_rng
from recursa.result import Candidate
from recursa.tasks.base import Task, normalize_text


@dataclass
class Cluster:
    """Candidates whose answers the task counts as equivalent."""

    answer: str | None
    members: list[int]


def cluster_answers(task: Task, answers: list[str | None]) -> list[Cluster]:
    """Group indices by task equivalence, in order of first appearance. Answers that are None
    do not vote unless no answer was extracted at all; then identical texts are grouped."""
    voters = [i for i, a in enumerate(answers) if a is not None]
    clusters: list[Cluster] = []
    by_key: dict[str, Cluster] = {}
    for i in voters:
        ans = answers[i]
        assert ans is not None
        key = task.key(ans)
        found = by_key.get(key)
        if found is None:
            found = next(
                (c for c in clusters if c.answer is not None and task.equivalent(c.answer, ans)),
                None,
            )
        if found is None:
            found = Cluster(ans, [])
            clusters.append(found)
        by_key[key] = found
        found.members.append(i)
    return clusters


def cluster_keys(keys: list[str | None], answers: list[str | None]) -> list[Cluster]:
    """Group indices by precomputed vote keys (equal keys = same answer; None does not
    vote), in order of first appearance; each cluster shows its first member's answer."""
    by_key: dict[str, Cluster] = {}
    for i, key in enumerate(keys):
        if key is not None:
            by_key.setdefault(key, Cluster(answers[i], [])).members.append(i)
    return list(by_key.values())


def _no_answer_clusters(texts: list[str]) -> list[Cluster]:
    clusters: dict[str, Cluster] = {}
    for i, t in enumerate(texts):
        clusters.setdefault(normalize_text(t), Cluster(None, [])).members.append(i)
    return list(clusters.values())


def ranked_clusters(
    task: Task, candidates: list[Candidate], seed: int, problem_id: str
) -> list[Cluster]:
    """Clusters largest first; ties ordered by a shuffle seeded from (seed, problem).
    Candidates carrying vote keys (see `Task.vote_keys`) are clustered by those keys."""
    answers = [c.answer for c in candidates]
    clusters: list[Cluster] = []
    if any(c.vote_key is not None for c in candidates):
        clusters = cluster_keys([c.vote_key for c in candidates], answers)
    if not clusters:
        clusters = cluster_answers(task, answers)
    if not clusters:
        clusters = _no_answer_clusters([c.text for c in candidates])
    rng = stable_rng("tie-break", seed, problem_id)
    tiebreak = [rng.random() for _ in clusters]
    order = sorted(range(len(clusters)), key=lambda i: (-len(clusters[i].members), tiebreak[i]))
    return [clusters[i] for i in order]


def majority_vote(
    task: Task, candidates: list[Candidate], seed: int, problem_id: str
) -> tuple[Candidate, float]:
    """The first member of the largest cluster, and that cluster's share of the population."""
    if not candidates:
        raise ValueError("majority vote over an empty population")
    best = ranked_clusters(task, candidates, seed, problem_id)[0]
    return candidates[best.members[0]], len(best.members) / len(candidates)


def random_member(candidates: list[Candidate], seed: int, problem_id: str) -> Candidate:
    """A uniformly random member, fixed by (seed, problem)."""
    if not candidates:
        raise ValueError("random choice from an empty population")
    return stable_rng("random-member", seed, problem_id).choice(candidates)


def top_answers(
    task: Task, candidates: list[Candidate], seed: int, problem_id: str, k: int
) -> list[Candidate]:
    """One representative (the first member) of each of the `k` largest answer clusters,
    largest first, ties broken as in `majority_vote`. Candidates without an extracted answer
    are never returned, so fewer than `k` come back when fewer distinct answers exist. With
    k = 2 this is ARC's pass@2: the problem counts as solved if either representative is."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    ranked = ranked_clusters(task, candidates, seed, problem_id)
    return [candidates[c.members[0]] for c in ranked if c.answer is not None][:k]
