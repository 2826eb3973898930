"""What the ``sqz`` command line does with an error: one ``error:`` line and the error's
exit code for what the user can fix (``model.errors.SqzError``), a traceback for a bug."""

from __future__ import annotations

import pytest

from hls import cli
from model.errors import CheckFailed, InputError, InputNotFound, SqzError, ToolFailed
from model.spec import SpecError


def test_bad_config_key_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variant: v1.1\nsqueeze: 3\n")
    assert cli.main(["info", "--config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and "unknown key(s) 'squeeze'" in captured.err


def test_missing_config_file_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert cli.main(["info", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: config file not found: {missing}\n"


def test_missing_data_folder_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert cli.main(["train", "--config", "tiny", "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: image folder not found: {missing}\n"


def test_programming_error_keeps_its_traceback(monkeypatch, capsys):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_info", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["info", "--config", "tiny"])
    assert "error:" not in capsys.readouterr().err


@pytest.mark.parametrize("exc, code", [(SpecError("x"), 2), (InputError("x"), 2),
                                       (InputNotFound("x"), 2), (ToolFailed("x"), 1),
                                       (CheckFailed("x"), 1)])
def test_exit_code_is_the_errors(monkeypatch, capsys, exc, code):
    def fails(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_info", fails)
    assert cli.main(["info"]) == code
    assert capsys.readouterr().err == "error: x\n"


def test_user_errors_stay_catchable_as_before():
    """Library callers that caught ValueError / FileNotFoundError / RuntimeError still do."""
    assert issubclass(SpecError, ValueError) and issubclass(InputError, ValueError)
    assert issubclass(InputNotFound, FileNotFoundError)
    assert issubclass(ToolFailed, RuntimeError)
    assert all(issubclass(e, SqzError) for e in (SpecError, InputError, InputNotFound,
                                                 ToolFailed, CheckFailed))
