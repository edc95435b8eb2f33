from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perturbsim._atomic import atomic_write, atomic_write_all
from perturbsim._errors import PerturbsimError
from perturbsim.models import _store as store
from perturbsim.models._store import read_model_dir, write_model_dir


def test_crash_mid_write_keeps_previous_file(tmp_path):
    path = tmp_path / "table.csv"
    atomic_write(path, lambda tmp: tmp.write_text("old\n"))

    def crash(tmp):
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")

    # h5py's error when the disk fills, named by the destination in one line
    with pytest.raises(PerturbsimError, match=r"cannot write '.*table.csv': RuntimeError: disk"):
        atomic_write(path, crash)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    assert path.stat().st_mode & 0o644 == 0o644


def test_files_written_together_are_replaced_together_and_errors_name_the_destination(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    atomic_write_all(
        {first: lambda tmp: tmp.write_text("old a"), second: lambda tmp: tmp.write_text("old b")}
    )

    def full_disk(tmp):
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError, match="No space left") as err:
        atomic_write_all({first: lambda tmp: tmp.write_text("new a"), second: full_disk})
    assert err.value.filename == str(second)  # not the temporary file it was writing
    assert first.read_text() == "old a"  # not replaced: its partner failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]


def test_a_failed_rename_puts_back_the_files_already_replaced(tmp_path):
    first, folder = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("old a")
    folder.mkdir()  # a destination that cannot be replaced by a file
    with pytest.raises(OSError):
        atomic_write_all(
            {first: lambda tmp: tmp.write_text("new a"), folder: lambda tmp: tmp.write_text("b")}
        )
    assert first.read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]


def test_a_link_and_a_file_without_hard_links_are_put_back(tmp_path, monkeypatch):
    from perturbsim import _atomic

    target = tmp_path / "target.csv"
    target.write_text("kept")
    link, plain, folder = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    link.symlink_to(target)
    plain.write_text("old b")
    folder.mkdir()  # fails last, after the others were replaced

    def no_hard_links(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(_atomic.os, "link", no_hard_links)  # moved aside instead
    writes = {path: (lambda tmp: tmp.write_text("new")) for path in (link, plain, folder)}
    with pytest.raises(OSError):
        atomic_write_all(writes)
    assert link.is_symlink() and link.read_text() == "kept"
    assert plain.read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv", "target.csv"]


def test_results_folder_renamed_in_part_is_put_back(tmp_path, monkeypatch):
    from perturbsim import _atomic

    out = tmp_path / "results"
    tables = {"settings.json": "old settings", "a.csv": "old a", "b.csv": "old b"}

    def write(texts):
        def into(folder):
            return {name: _write_text(folder / name, text) for name, text in texts.items()}

        return into

    _atomic.write_results_dir(out, write(tables))
    replace = _atomic.os.replace

    def fails_on_b(source, target):
        if Path(target).name == "b.csv":
            raise OSError(28, "No space left on device", str(target))
        return replace(source, target)

    monkeypatch.setattr(_atomic.os, "replace", fails_on_b)
    with pytest.raises(OSError, match="No space left"):
        _atomic.write_results_dir(out, write(dict.fromkeys(tables, "new")), overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in out.iterdir()} == tables


def test_a_leftover_staging_folder_keeping_a_former_file_is_not_removed(tmp_path):
    from perturbsim import _atomic

    out = tmp_path / "results"

    def write(folder):
        return {"settings.json": _write_text(folder / "settings.json", "{}")}

    _atomic.write_results_dir(out, write)
    killed = out / f"{_atomic.STAGING_PREFIX}killed"  # a run killed while writing
    killed.mkdir()
    _write_text(killed / "a.csv", "half written")
    stuck = out / f"{_atomic.STAGING_PREFIX}stuck"  # a former file that could not be put back
    stuck.mkdir()
    _write_text(stuck / ".a.csv.old", "the only copy")
    _atomic.write_results_dir(out, write, overwrite=True)
    assert not killed.exists()
    assert (stuck / ".a.csv.old").read_text() == "the only copy"


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_destination_named_twice_or_never_written_is_refused(tmp_path):
    path = tmp_path / "c.csv"
    with pytest.raises(PerturbsimError, match="to be written twice"):
        atomic_write_all(
            {path: lambda t: t.write_text("1"), str(path): lambda t: t.write_text("2")}
        )
    with pytest.raises(PerturbsimError, match="nothing was written for"):
        atomic_write(path, lambda tmp: Path(f"{tmp}.npy").write_text("beside its path"))
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize("stage", ["weights", "config", "rename"])
def test_crash_mid_model_save_keeps_previous_model(tmp_path, monkeypatch, stage):
    path = tmp_path / "model"
    write_model_dir(path, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=False)

    def disk_full(*args):
        raise OSError("disk full")

    rename = Path.rename

    def rename_fails_into_place(self, target):
        if self.name.startswith(".model.tmp-"):  # the new model, after the old one moved
            disk_full()
        return rename(self, target)

    if stage == "weights":
        monkeypatch.setattr(store, "save_file", disk_full)
    elif stage == "config":
        monkeypatch.setattr(store.os, "fsync", disk_full)
    else:
        monkeypatch.setattr(Path, "rename", rename_fails_into_place)
    with pytest.raises(PerturbsimError, match=r"cannot write a model to '.*model': .*disk full"):
        write_model_dir(path, config={"a": 2}, arrays={"w": np.arange(4.0)}, overwrite=True)
    config, arrays = read_model_dir(path)
    assert config["a"] == 1
    np.testing.assert_array_equal(arrays["w"], np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_overwrite_never_replaces_a_directory_that_is_not_a_model(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("keep me\n")
    with pytest.raises(PerturbsimError, match=r"not a model directory \(no config.json\)"):
        write_model_dir(project, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert [p.name for p in project.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_model_dir(empty, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert read_model_dir(empty)[0]["a"] == 1
    (empty / "notes.txt").write_text("kept beside the model\n")  # not the model's to delete
    (empty / "older").mkdir()
    with pytest.raises(PerturbsimError, match=r"holds 'notes.txt', 'older' beside a model's"):
        write_model_dir(empty, config={"a": 2}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert read_model_dir(empty)[0]["a"] == 1 and (empty / "notes.txt").is_file()
    (empty / "notes.txt").unlink()
    (empty / "older").rmdir()
    write_model_dir(empty, config={"a": 2}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert read_model_dir(empty)[0]["a"] == 2


@pytest.mark.parametrize("target", [".", ".."])
def test_the_working_folder_is_never_replaced_by_a_model(tmp_path, monkeypatch, target):
    working = tmp_path / "empty" / "work"
    working.mkdir(parents=True)
    monkeypatch.chdir(working)
    with pytest.raises(PerturbsimError, match="is the working folder or holds it; not replaced"):
        write_model_dir(target, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert working.is_dir() and not list(working.iterdir())  # nothing written, nothing moved


def test_a_model_is_replaced_from_a_working_folder_since_deleted(tmp_path, monkeypatch):
    target = tmp_path / "model"
    write_model_dir(target, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=False)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    write_model_dir(target, config={"a": 2}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert read_model_dir(target)[0]["a"] == 2


def test_a_file_or_another_tools_config_is_never_replaced_by_a_model(tmp_path):
    import json

    # a file where the model goes: refused, kept as it was
    file = tmp_path / "model"
    file.write_text("a report\n")
    with pytest.raises(PerturbsimError, match="is a file, not a model directory; not replaced"):
        write_model_dir(file, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert file.read_text() == "a report\n"
    # a config.json with a format_version but no weights checksum is another tool's
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"format_version": 1, "model": "theirs"}))
    with pytest.raises(PerturbsimError, match="is not a perturbsim model's config"):
        write_model_dir(other, config={"a": 1}, arrays={"w": np.arange(3.0)}, overwrite=True)
    assert json.loads((other / "config.json").read_text())["model"] == "theirs"


def test_an_interrupted_save_names_the_latest_previous_model(tmp_path):
    import os

    for age, tag in ((2000, "0000aaaa"), (1000, "ffff0000")):  # the older sorts last by name
        retired = tmp_path / f".model.old-{tag}"
        write_model_dir(retired, config={"a": age}, arrays={"w": np.arange(3.0)}, overwrite=False)
        os.utime(retired, (1e9 - age, 1e9 - age))
    with pytest.raises(PerturbsimError, match=r"previous model is in '.*\.model\.old-ffff0000'"):
        read_model_dir(tmp_path / "model")


def test_a_file_new_to_its_folder_is_removed_when_its_partner_cannot_be_renamed(tmp_path):
    new, folder = tmp_path / "a.csv", tmp_path / "b.csv"
    folder.mkdir()  # a destination that cannot be replaced by a file, renamed in after a.csv
    with pytest.raises(OSError):
        atomic_write_all(
            {new: lambda tmp: tmp.write_text("new a"), folder: lambda tmp: tmp.write_text("b")}
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv"]  # as it was


def test_replacing_a_file_leaves_no_copy_of_the_old_one(tmp_path):
    path = tmp_path / "table.csv"
    atomic_write(path, lambda tmp: tmp.write_text("old\n"))
    atomic_write(path, lambda tmp: tmp.write_text("new\n"))
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no hidden folder, no .old


def test_a_results_folder_is_checked_itself_for_a_read_only_file_system(tmp_path, monkeypatch):
    from perturbsim import _atomic

    out = tmp_path / "results"
    out.mkdir()  # mounted read-only, its parent not
    monkeypatch.setattr(_atomic, "_on_read_only_file_system", lambda place: place == out)
    with pytest.raises(PerturbsimError, match=r"'.*results' is on a read-only file system"):
        _atomic.check_writable_place(out, "results to", folder=True)
    _atomic.check_writable_place(tmp_path / "report.md", "the report")  # beside it: writable


def test_a_folder_above_the_working_folder_is_never_replaced_by_results(tmp_path, monkeypatch):
    from perturbsim import _atomic

    working = tmp_path / "results" / "work"
    working.mkdir(parents=True)
    (tmp_path / "results" / "settings.json").write_text("{}")
    monkeypatch.chdir(working)
    with pytest.raises(PerturbsimError, match="never the working folder or one above it"):
        _atomic.check_results_dir(tmp_path / "results", overwrite=True)


def test_a_link_among_results_is_never_replaced(tmp_path):
    from perturbsim import _atomic

    out = tmp_path / "results"
    out.mkdir()
    (out / "settings.json").write_text("{}")
    (tmp_path / "data.csv").write_text("a table of someone else's")
    (out / "data.csv").symlink_to(tmp_path / "data.csv")  # named as a result's table
    with pytest.raises(PerturbsimError, match="it holds 'data.csv': choose another folder"):
        _atomic.check_results_dir(out, overwrite=True)


def test_a_link_to_a_folder_is_never_taken_as_a_folder_of_results(tmp_path):
    from perturbsim import _atomic

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(PerturbsimError, match="is a file or a link, not a folder of results"):
        _atomic.check_results_dir(tmp_path / "results", overwrite=True)
