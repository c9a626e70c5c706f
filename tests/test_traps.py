"""No silent traps: a location the user named that does not exist is never created by a typo, an output folder that
cannot be written is one line and exit 2, and the default data folder is one documented place."""

import logging
import re
from pathlib import Path

import pytest

from phasediag import cli
from phasediag.run.config import ConfigError, RunConfig, data_folder

TINY = ["--dataset", "synthetic:1x4x4:64", "--depth", "2", "--width", "8", "--measure_examples", "32",
        "--batch_size", "16", "--accelerator", "cpu"]  # fmt: skip


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phasediag: error: "), err
    return err


@pytest.mark.parametrize("command", ["run", "search", "saturation"])
def test_a_data_dir_that_does_not_exist_is_refused_and_not_created(store, tmp_path, capsys, command):
    typo = tmp_path / "dta"
    assert cli.main([command, "--dataset", "fashion_mnist", "--data_dir", str(typo)]) == 2
    err = one_line(capsys)
    assert f"data_dir={str(typo)!r} is not allowed: no such folder" in err and "--download true" in err
    assert not typo.exists() and not (tmp_path / "mlruns.db").exists() and not (tmp_path / "optuna.db").exists()


def test_a_missing_data_dir_is_fine_when_asked_to_download_there_or_for_data_without_files(tmp_path):
    assert RunConfig(dataset="fashion_mnist", data_dir=str(tmp_path / "new"), download=True).download
    assert RunConfig(dataset="synthetic:1x4x4:64", data_dir=str(tmp_path / "unused")).data_dir
    with pytest.raises(ConfigError, match="no such folder"):  # Python callers get the same check
        RunConfig(dataset="mnist", data_dir=str(tmp_path / "nowhere"))


def test_the_default_data_folder_is_phasediag_data_else_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PHASEDIAG_DATA", str(tmp_path / "d"))
    assert data_folder(None) == tmp_path / "d" and data_folder("x") == Path("x")
    monkeypatch.delenv("PHASEDIAG_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_folder(None) == tmp_path / "cache" / "phasediag"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_folder(None) == Path.home() / ".cache" / "phasediag"
    assert RunConfig().data_dir is None  # not the working folder


def test_phasediag_data_creates_the_folder_it_is_asked_to_fill(tmp_path, capsys, monkeypatch):
    from phasediag.run import data

    source = tmp_path / "debian"
    source.mkdir()
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", source)  # no files: prepares nothing, creates nothing
    target = tmp_path / "new" / "data"
    assert cli.main(["data", "--data_dir", str(target)]) == 2
    assert "dataset-fashion-mnist" in one_line(capsys) and not target.exists()


def test_a_storage_folder_that_does_not_exist_is_refused_and_not_created(store, tmp_path, capsys):
    missing = tmp_path / "nonexistent" / "dir"
    for storage in (f"sqlite:///{missing}/optuna.db", f"journal://{missing}/optuna.log"):
        assert cli.main(["search", *TINY, "--storage", storage]) == 2
        err = one_line(capsys)
        assert f"the folder {missing} does not exist" in err
        assert not missing.parent.exists() and not (tmp_path / "mlruns.db").exists()


def test_an_output_folder_that_cannot_be_written_is_one_line_exit_2(store, tmp_path, capsys):
    assert Path("/proc").is_dir()
    assert cli.main(["uv", "--out", "/proc/uvout", "--widths", "2", "--inits", "2", "--log", "false"]) == 2
    assert "out='/proc/uvout' is not allowed: /proc is not a writable folder" in one_line(capsys)
    assert not Path("/proc/uvout").exists()
    assert cli.main(["uv", "--out", str(tmp_path / "ok"), "--widths", "2", "--inits", "2", "--log", "false"]) == 0
    assert not list(tmp_path.glob(".phasediag-probe-*"))  # the writability probe leaves nothing behind


def test_progress_without_a_terminal_is_throttled_log_lines(caplog):
    from phasediag import progress

    caplog.set_level(logging.INFO, logger="phasediag.progress")
    with progress.bar(total=3, desc="sweep s", unit="search") as bar:  # pytest captures stderr: not a terminal
        assert bar.disable
        for _ in range(3):
            bar.update()
    lines = [r.getMessage() for r in caplog.records if r.name == "phasediag.progress"]
    assert lines == ["sweep s: 1/3 search(s) done", "sweep s: 3/3 search(s) done"]  # the 2nd within THROTTLE_S


def test_a_search_says_why_constants_are_nan_and_that_it_resumed(store, capsys, caplog):
    caplog.set_level(logging.INFO, logger="phasediag")
    argv = ["search", *TINY, "--x_min", "-2", "--x_max", "-1", "--log_checkpoints", "false"]
    assert cli.main(argv) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("c_max" in m and "nothing diverged up to c = 2^x_max = 0.5; raise --x_max" in m for m in messages), messages
    assert any(re.search(r"search \S+: \d+ trial\(s\) done", m) for m in messages)  # progress, without a terminal
    assert not any("resumed" in m for m in messages)
    caplog.clear()
    assert cli.main(argv) == 0
    resumed = [r.getMessage() for r in caplog.records if "resumed" in r.getMessage()]
    assert len(resumed) == 1 and re.search(r"resumed: \d+ trial\(s\) already done, not trained again", resumed[0])
