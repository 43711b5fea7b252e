"""LiveCodeBench rows built the real way, for tests (private tests: base64(zlib(pickle(JSON))))."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from typing import Any


def encode_private(tests: list[dict[str, Any]]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def encode_pickle(value: Any) -> str:
    """Any object packed like private tests (to build refused payloads)."""
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


def stdin_row(qid: str = "abc301_a", date: str = "2025-03-01T00:00:00") -> dict[str, Any]:
    """'Read two integers a and b; print a + b', as an AtCoder-style stdin problem."""
    public = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    private = [
        {"input": "10 20\n", "output": "30\n", "testtype": "stdin"},
        {"input": "-5 5\n", "output": "0\n", "testtype": "stdin"},
    ]
    return {
        "question_title": "Sum",
        "question_content": "Read two integers a and b from standard input; print a + b.",
        "platform": "atcoder",
        "question_id": qid,
        "contest_id": "abc301",
        "contest_date": date,
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(public),
        "private_test_cases": encode_private(private),
        "metadata": "{}",
    }


def functional_row(qid: str = "two-sum", date: str = "2025-04-01T00:00:00") -> dict[str, Any]:
    """LeetCode's Two Sum: one JSON argument per input line, a JSON list back."""
    public = [{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}]
    private = [
        {"input": "[3,2,4]\n6", "output": "[1, 2]", "testtype": "functional"},
        {"input": "[3,3]\n6", "output": "[0, 1]", "testtype": "functional"},
    ]
    return {
        "question_title": "Two Sum",
        "question_content": "Return the indices of the two numbers that add up to target.",
        "platform": "leetcode",
        "question_id": qid,
        "contest_id": "weekly-1",
        "contest_date": date,
        "starter_code": (
            "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        ),
        "difficulty": "easy",
        "public_test_cases": json.dumps(public),
        "private_test_cases": encode_private(private),
        "metadata": json.dumps({"func_name": "twoSum"}),
    }


STDIN_CORRECT = "a, b = map(int, input().split())\nprint(a + b)\n"
STDIN_WRONG = "a, b = map(int, input().split())\nprint(a - b)\n"
FUNCTIONAL_CORRECT = """\
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
        return []
"""
FUNCTIONAL_WRONG = """\
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        return [0, 1]
"""


def fenced(code: str, reasoning: str = "Here is my solution.") -> str:
    body = code if code.endswith("\n") else code + "\n"
    return f"{reasoning}\n```python\n{body}```\n"
