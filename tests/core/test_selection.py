"""Majority vote with task equivalence, abstentions and deterministic ties."""

from __future__ import annotations

from collections.abc import Callable

from recursa import Candidate, Completion, GenerationRequest, Problem, RSAConfig, get_task, solve
from recursa.selection import cluster_answers, majority_vote, random_member
from recursa.verification import VERIFY_QUESTION
from tests.helpers.mock_engine import MockRun


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


class _DictStore:
    """A CompletionStore in memory, keyed by phase too."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int, int], Completion] = {}

    def lookup(
        self, problem_id: str, step: int, slot: int, phase: str = "generate"
    ) -> Completion | None:
        return self.rows.get((problem_id, phase, step, slot))

    def record(
        self,
        problem_id: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
        phase: str = "generate",
    ) -> None:
        self.rows[(problem_id, phase, step, slot)] = completion


def _verifying_script(request: GenerationRequest) -> str:
    prompt = request.messages[-1]["content"]
    if VERIFY_QUESTION in prompt:  # only the candidate answering 2 is judged right
        return "True" if "\\boxed{2}" in prompt else "False"
    return f"\\boxed{{{2 if request.meta['slot'] == 0 else 1}}}"


def test_selection_verify_runs_inside_the_engine_through_its_store(
    mock_engine: Callable[..., MockRun],
) -> None:
    store = _DictStore()
    config = RSAConfig(n=3, k=1, t=2, task="math", selection="verify")
    mock = mock_engine(_verifying_script, config, engine={"store": store})
    result = mock.run(Problem("p", "What is 1 + 1?", task="math"))
    assert result.answer == "2" and result.selection == "verify"
    assert result.selection_details == {
        "verdicts": [True, False, False],
        "fallback_to_majority": False,
    }
    assert result.selection_usage["generations"] == 3 and result.usage["generations"] == 6
    judged = [r for r in mock.backend.calls if r.meta.get("phase") == "verify"]
    assert [r.key for r in judged] == ["p/verify/2/0", "p/verify/2/1", "p/verify/2/2"]
    assert all(r.temperature == 0.1 and r.max_tokens <= 10 for r in judged)  # the reference's
    assert {k[1] for k in store.rows} == {"generate", "verify"} and len(store.rows) == 9
    # Again over the same store: every sample and judgement is found, none asked again.
    again = mock_engine(_verifying_script, config, engine={"store": store})
    assert again.run(Problem("p", "What is 1 + 1?", task="math")).answer == "2"
    assert again.backend.calls == []


def test_library_solve_takes_selection_verify() -> None:
    result = solve("What is 2+2?", backend="mock", n=3, k=2, t=2, selection="verify")
    assert result.selection == "verify"
    assert len(result.selection_details["verdicts"]) == 3  # type: ignore[index]
