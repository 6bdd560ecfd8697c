"""Kölner Phonetik (Postel, 1969): German names that sound alike share a code (Meier, Maier, Mayer → 67).

Used to find likely duplicate files whose names were spelled differently.
"""

from __future__ import annotations

from commhub.contacts.names import fold

_SIMPLE = {**dict.fromkeys("aeijouy", "0"), "b": "1", **dict.fromkeys("fvw", "3"), **dict.fromkeys("gkq", "4"),
           "l": "5", **dict.fromkeys("mn", "6"), "r": "7", **dict.fromkeys("sz", "8"), "h": "-"}


def cologne_code(word: str) -> str:
    letters = [ch for ch in fold(word) if "a" <= ch <= "z"]
    digits = [_code(letters, i) for i in range(len(letters))]
    collapsed: list[str] = []
    for digit in "".join(digits):
        if not collapsed or collapsed[-1] != digit:
            collapsed.append(digit)
    code = "".join(collapsed).replace("-", "")
    return code[:1] + code[1:].replace("0", "") if code else ""


def _code(letters: list[str], i: int) -> str:
    ch = letters[i]
    before = letters[i - 1] if i > 0 else ""
    after = letters[i + 1] if i + 1 < len(letters) else ""
    if ch in _SIMPLE:
        return _SIMPLE[ch]
    if ch == "p":
        return "3" if after == "h" else "1"
    if ch in "dt":
        return "8" if after in ("c", "s", "z") else "2"
    if ch == "x":
        return "8" if before in ("c", "k", "q") else "48"
    if ch == "c":
        return _code_c(before, after, initial=i == 0)
    return ""


def _code_c(before: str, after: str, *, initial: bool) -> str:
    if initial:
        return "4" if after in "ahkloqrux" and after else "8"
    if before in ("s", "z"):
        return "8"
    return "4" if after and after in "ahkoqux" else "8"
