"""The two-worker schedule (tests/conftest.py): the longest units are handed out first."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.conftest import LONGEST_UNITS, longest_first
else:
    from conftest import LONGEST_UNITS, longest_first


def test_the_longest_units_go_first_in_their_order_and_the_rest_keep_theirs():
    queue = {
        "tests/test_a.py": {"tests/test_a.py::x": False},
        "offline_run": {"tests/test_cli.py::y": False},
        "tests/test_b.py": {"tests/test_b.py::z": False},
        "claude_run": {"tests/test_crosscheck_cli.py::w": False},
    }
    ordered = longest_first(queue)
    assert list(ordered.items()) == [
        ("claude_run", {"tests/test_crosscheck_cli.py::w": False}),
        ("offline_run", {"tests/test_cli.py::y": False}),
        ("tests/test_a.py", {"tests/test_a.py::x": False}),
        ("tests/test_b.py", {"tests/test_b.py::z": False}),
    ]
    assert LONGEST_UNITS.index("claude_run") < LONGEST_UNITS.index("offline_run")
