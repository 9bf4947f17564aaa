"""The directory file: format, case-insensitive keys, and line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapse_login_redirect.routing.directory import (
    Directory,
    DirectoryError,
    load_directory,
)

KNOWN = ("eng", "hist", "self")


def load(tmp_path: Path, text: str) -> Directory:
    path = tmp_path / "directory.tsv"
    path.write_text(text, encoding="utf-8")
    return load_directory(str(path), KNOWN)


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(DirectoryError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_entries_are_lower_cased_and_comments_ignored(tmp_path: Path) -> None:
    directory = load(
        tmp_path,
        "# user\ttarget\n"
        "\n"
        "   \n"
        "@Alice:Eng.Example\teng\n"
        "Bob  hist   # moved in March\n"
        "carol@Lab.example self\n"
        "#dave eng\n",
    )
    assert directory.entries == {
        "@alice:eng.example": "eng",
        "bob": "hist",
        "carol@lab.example": "self",
    }
    assert directory.lookup("bob") == "hist"
    assert directory.lookup("dave") is None
    assert directory.lookup(None) is None


def test_entries_share_the_known_target_strings(tmp_path: Path) -> None:
    # One string object per target keeps a 1M-entry table small.
    known = ["".join(["e", "ng"])]
    path = tmp_path / "directory.tsv"
    path.write_text("a eng\nb eng\n", encoding="utf-8")
    entries = load_directory(str(path), known).entries
    assert entries["a"] is known[0] and entries["b"] is known[0]


def test_a_user_may_be_repeated_with_the_same_target(tmp_path: Path) -> None:
    assert load(tmp_path, "alice eng\nALICE eng\n").entries == {"alice": "eng"}


def test_ten_thousand_lines(tmp_path: Path) -> None:
    lines = [f"@user{i}:example.org\t{KNOWN[i % 3]}" for i in range(10_000)]
    directory = load(tmp_path, "\n".join(lines))
    assert len(directory.entries) == 10_000
    assert directory.lookup("@user9999:example.org") == "eng"
    assert directory.lookup("@user5002:example.org") == "hist"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "alice eng\nbob nope\n",
            "1 bad line: line 2: unknown target 'nope'; "
            "known targets are: eng, hist, self",
        ),
        ("alice\n", "1 bad line: line 1: expected '<user> <target>', got 'alice'"),
        (
            "alice eng hist\n",
            "1 bad line: line 1: expected '<user> <target>', got 'alice eng hist'",
        ),
        (
            "alice # eng\n",
            "1 bad line: line 1: expected '<user> <target>', got 'alice # eng'",
        ),
        (
            "@alice eng\n",
            "1 bad line: line 1: '@alice' is not a full Matrix ID (@alice:example.org)",
        ),
        (
            "alice eng\nALICE hist\n",
            "1 bad line: line 2: 'ALICE' was already listed with target 'eng'",
        ),
        (
            "a x\nb eng\nc x\n",
            "2 bad lines: line 1: unknown target 'x'; known targets are: eng, hist, "
            "self; line 3: unknown target 'x'; known targets are: eng, hist, self",
        ),
    ],
)
def test_bad_lines(tmp_path: Path, text: str, message: str) -> None:
    assert error_for(tmp_path, text) == message


def test_only_the_first_bad_lines_are_quoted(tmp_path: Path) -> None:
    message = error_for(tmp_path, "".join(f"user{i}\n" for i in range(1, 8)))
    assert message.startswith("7 bad lines, the first ones: line 1: expected")
    assert "line 5: expected '<user> <target>', got 'user5'" in message
    assert "line 6" not in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "directory.tsv"
    path.write_bytes(b"alice eng\n\xff eng\n")
    with pytest.raises(DirectoryError, match="^is not UTF-8 text: invalid start byte"):
        load_directory(str(path), KNOWN)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_directory(str(tmp_path / "missing.tsv"), KNOWN)
