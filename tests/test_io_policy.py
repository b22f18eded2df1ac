"""The project's one atomic-write helper and its one command-line error policy."""
import os
import stat

import pytest

from repsim._cli_policy import UserError, run_cli, user_input
from repsim._io import atomic_path, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text("first", target)
    atomic_write_text("second", target)
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_write_error_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text("old", target)
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text("x", tmp_path / "a.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_run_cli_user_error_is_one_line_and_status_2(capsys):
    def main(argv):
        raise UserError("bad value\nsecond line")

    assert run_cli("prog", main, []) == 2
    assert capsys.readouterr().err == "prog: error: bad value second line\n"


def test_run_cli_lets_bugs_through():
    def main(argv):
        raise ValueError("a bug deep in the work")

    with pytest.raises(ValueError, match="a bug deep"):
        run_cli("prog", main, [])


def test_user_input_turns_input_errors_into_user_errors():
    with pytest.raises(UserError, match="^config: no such file$"):
        with user_input("config"):
            raise FileNotFoundError("no such file")
    with pytest.raises(KeyError):             # not an input error: unchanged
        with user_input("config"):
            raise KeyError("x")
