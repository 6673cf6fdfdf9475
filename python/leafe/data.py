"""Datasets that ship inside the package."""

from __future__ import annotations

import json
from typing import Any

from . import _leafe


def mbpp(split: str = "test") -> list[dict[str, Any]]:
    """MBPP's problems of ``split`` (``test`` 500, ``train`` 374, ``validation`` 90, ``prompt`` 10).

    Each is a dict with ``task_id``, ``text`` (the problem), ``code`` (the reference
    solution), ``test_setup_code`` and ``test_list`` (its assert lines): the data the
    ``mbpp`` environment embeds (Austin et al. 2021, CC BY 4.0).

    >>> p = leafe.mbpp("test")[0]
    >>> leafe.run_tests(p["code"], p["test_list"], setup=p["test_setup_code"]).all_passed
    True
    """
    return [json.loads(line) for line in _leafe.mbpp_lines(split)]
