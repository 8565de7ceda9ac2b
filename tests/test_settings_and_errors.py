"""One settings object read from the environment, and one error base class caught at both doors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from symptomgen import cli, settings
from symptomgen.errors import DataError, InvalidInput, RunNotFoundError, TrainingFailed, UserError
from symptomgen.settings import Settings, env_flag


def test_settings_read_every_variable_with_one_boolean_parser():
    s = Settings.from_env({"SYMPTOMGEN_RUNS_DIR": "/data/runs", "SYMPTOMGEN_MAX_FILE_MB": "2",
                           "SYMPTOMGEN_MAX_ROWS": "10",
                           "HF_HUB_OFFLINE": "YES", "SYMPTOMGEN_ALLOWED_MODELS": " distilgpt2, openai-community/* ,",
                           "SPACES_ZERO_GPU": "0", "SYMPTOMGEN_PORT": "9000", "SPACE_ID": "me/app"})
    assert s.runs_dir == Path("/data/runs") and s.max_file_bytes == 2 * 1024 * 1024 and s.max_rows == 10
    assert s.offline and not s.zero_gpu and s.on_space and s.port == 9000
    assert s.allowed_models == ("distilgpt2", "openai-community/*")
    assert Settings.from_env({}) == Settings()
    assert [env_flag(v) for v in ("1", "true", "On", "", "0", "no", "maybe")] == [True] * 3 + [False] * 4
    assert env_flag("", default=True) and not env_flag("off", default=True)


def test_the_process_role_and_cpu_switches_come_from_settings(monkeypatch):
    assert Settings.from_env({"SYMPTOMGEN_CPU_BF16": "0", "SYMPTOMGEN_KEEP_FREED_MEMORY": "1"}) == Settings(
        cpu_bf16=False, keep_freed_memory=True)
    assert settings.rank({}) == 0 and settings.world_size({}) == 1
    assert settings.rank({"RANK": "2"}) == 2 and settings.world_size({"WORLD_SIZE": "4"}) == 4
    monkeypatch.delenv("RANK", raising=False)
    assert settings.is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not settings.is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert settings.is_main_process()


def test_a_bad_number_in_the_environment_is_one_sentence():
    with pytest.raises(InvalidInput, match="SYMPTOMGEN_MAX_ROWS must be a number, got 'lots'"):
        Settings.from_env({"SYMPTOMGEN_MAX_ROWS": "lots"})
    with pytest.raises(InvalidInput, match="must be above 0"):
        Settings.from_env({"SYMPTOMGEN_MAX_FILE_MB": "-1"})


def test_current_reads_the_environment_when_asked_and_override_pins_values(monkeypatch):
    monkeypatch.setenv("SYMPTOMGEN_MAX_ROWS", "123")
    assert settings.current().max_rows == 123
    with settings.override(max_rows=7) as pinned:
        assert pinned.max_rows == settings.current().max_rows == 7
        monkeypatch.setenv("SYMPTOMGEN_MAX_ROWS", "456")
        assert settings.current().max_rows == 7  # pinned beats the environment
    assert settings.current().max_rows == 456
    with pytest.raises(TypeError, match="unknown settings"):
        with settings.override(no_such_setting=1):
            pass


def test_every_user_facing_error_shares_one_base_and_keeps_its_builtin_kind():
    for cls in (InvalidInput, DataError, RunNotFoundError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError)
    assert issubclass(TrainingFailed, UserError) and issubclass(TrainingFailed, RuntimeError)


def test_cli_shows_user_errors_as_they_are_and_bugs_as_an_internal_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli.RunStore, "list", lambda store: (_ for _ in ()).throw(RunNotFoundError("No such run.")))
    assert cli.main(["--runs-dir", str(tmp_path), "runs"]) == 2
    assert capsys.readouterr().err == "error: No such run.\n"
    monkeypatch.setattr(cli.RunStore, "list", lambda store: {}["missing"])  # a bug: KeyError
    assert cli.main(["--runs-dir", str(tmp_path), "runs"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Internal error (KeyError)") and err.count("\n") == 1 and "Traceback" not in err
    monkeypatch.setattr(cli.RunStore, "list",
                        lambda store: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert cli.main(["--runs-dir", str(tmp_path), "runs"]) == 1
    assert capsys.readouterr().err == "error: could not read or write a file: No space left on device\n"


def test_page_shows_user_errors_as_they_are_and_logs_bugs(caplog):
    gr = pytest.importorskip("gradio")
    from symptomgen.ui.widgets import to_gr_error

    assert to_gr_error(InvalidInput("Epochs must be between 1 and 100, got 0.")).message == \
        "Epochs must be between 1 and 100, got 0."
    with caplog.at_level(logging.ERROR):
        shown = to_gr_error(AttributeError("'int' object has no attribute 'strip'"))
    assert isinstance(shown, gr.Error) and shown.message.startswith("Internal error (AttributeError)")
    assert "server log" in shown.message
    assert any(r.exc_info and r.exc_info[0] is AttributeError for r in caplog.records)  # the traceback is logged


def test_tcmalloc_is_preloaded_once_where_installed_and_never_when_turned_off(monkeypatch, tmp_path):
    """``cputune.preload_env`` puts an installed tcmalloc first in LD_PRELOAD (keeping what was there), adds it
    only once, and changes nothing when it is absent or SYMPTOMGEN_TCMALLOC=0."""
    from symptomgen import cputune

    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    monkeypatch.setattr(cputune, "tcmalloc_path", lambda: str(lib))
    monkeypatch.delenv("SYMPTOMGEN_TCMALLOC", raising=False)
    env = cputune.preload_env({"LD_PRELOAD": "/opt/other.so", "PATH": "/bin"})
    assert env == {"LD_PRELOAD": f"{lib} /opt/other.so", "PATH": "/bin"}
    assert cputune.preload_env(env) is None  # already preloaded: the re-executed process does not loop
    monkeypatch.setenv("SYMPTOMGEN_TCMALLOC", "0")
    assert cputune.preload_env({}) is None
    monkeypatch.delenv("SYMPTOMGEN_TCMALLOC")
    monkeypatch.setattr(cputune, "tcmalloc_path", lambda: None)
    assert cputune.preload_env({}) is None


def test_the_cli_runs_with_tcmalloc_when_it_is_installed(tmp_path):
    """``python -m symptomgen`` re-executes itself with tcmalloc preloaded (glibc's loader, asked with LD_DEBUG,
    names the library it initialises), and does not with SYMPTOMGEN_TCMALLOC=0; the command works either way."""
    import os
    import subprocess
    import sys

    from symptomgen import cputune

    if cputune.tcmalloc_path() is None:
        pytest.skip("tcmalloc is not installed here (Debian: libtcmalloc-minimal4)")
    root = Path(__file__).resolve().parents[1]
    loaded = {}
    for flag in ("1", "0"):
        env = {**os.environ, "LD_DEBUG": "files", "SYMPTOMGEN_TCMALLOC": flag, "SYMPTOMGEN_RUNS_DIR": str(tmp_path)}
        env.pop("LD_PRELOAD", None)
        done = subprocess.run([sys.executable, "-m", "symptomgen", "runs"], capture_output=True, text=True,
                              timeout=120, cwd=root, env=env)
        assert done.returncode == 0 and "no runs" in done.stdout.lower(), done.stdout
        loaded[flag] = "tcmalloc" in done.stderr
    assert loaded == {"1": True, "0": False}
