"""Model directories: JSON config + safetensors weights, written atomically, never unpickled."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .._atomic import RESULTS_MARKER, check_writable_place, new_file_mode
from .._checks import as_path, check_flag
from .._errors import PerturbsimError, error_reason, os_reason, shown_list

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


def check_replaceable(path: str | Path) -> None:
    """Refuse to replace ``path`` unless it is an empty directory or a model directory.

    Replacing a model directory removes everything in it, so it must hold a model's files
    only (``config.json``, ``weights.safetensors``); a directory holding anything else (a
    report, a project folder, notes kept beside a model) or a file is not replaced, nor the
    working directory or one above it (the new model is renamed into its place).
    """
    path = Path(path)
    if path.is_symlink():
        raise PerturbsimError(
            f"{str(path)!r} is a symbolic link; not replaced (the link would become a folder "
            "and its target keep the old model): save to the folder it points to"
        )
    if not path.exists():
        return
    if not path.is_dir():
        raise PerturbsimError(f"{str(path)!r} is a file, not a model directory; not replaced")
    try:
        here = Path.cwd().resolve()
    except FileNotFoundError:  # the working folder was deleted: it is no folder to replace
        here = None
    if here is not None and path.resolve() in (here, *here.parents):
        raise PerturbsimError(
            f"{str(path)!r} is the working folder or holds it; not replaced (a folder in use "
            "cannot be swapped for the new model): save to a new sub-folder, e.g. 'model'"
        )
    entries = sorted(entry.name for entry in path.iterdir())
    if entries and not (path / CONFIG_FILE).is_file():
        raise PerturbsimError(
            f"{str(path)!r} is not a model directory (no {CONFIG_FILE}); not replaced: "
            "choose a new path"
        )
    others = [name for name in entries if name not in {CONFIG_FILE, WEIGHTS_FILE}]
    if others:
        raise PerturbsimError(
            f"{str(path)!r} holds {shown_list([repr(n) for n in others], 3)} beside a model's "
            "files; not replaced (it would be deleted with them): choose a new path"
        )
    if entries and not _is_model_config(path / CONFIG_FILE):
        raise PerturbsimError(
            f"{str(path / CONFIG_FILE)!r} is not a perturbsim model's config; {str(path)!r} not "
            "replaced (it would be deleted): choose a new path"
        )


def _is_model_config(config_file: Path) -> bool:
    """Whether ``config_file`` reads as a saved model's config (its version, its checksums)."""
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"format_version", "weights_sha256"} <= config.keys()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


ARRAY_SHAPES = "array_shapes"
"""Key of config.json recording each weight's shape (absent from older files)."""
CONFIG_CHECKSUM = "config_sha256"
"""Key of config.json holding the checksum of the rest of it (absent from older files)."""


def _config_sha256(config: dict[str, Any]) -> str:
    """Checksum of a config's content as JSON reads it back, its own checksum left out."""
    content = json.loads(json.dumps({k: v for k, v in config.items() if k != CONFIG_CHECKSUM}))
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def write_model_dir(
    path: str | Path, *, config: dict[str, Any], arrays: dict[str, np.ndarray], overwrite: bool
) -> Path:
    """Write ``config`` and ``arrays`` into the directory ``path`` atomically.

    Everything is written into a temporary sibling directory first, then renamed into place,
    so a crash mid-save leaves any previous model at ``path`` intact, but for one moment:
    the previous model is renamed aside (``.NAME.old-*``, beside it) just before the new
    one is renamed in, and a crash between the two renames leaves it there, which
    :func:`read_model_dir` then names.

    Parameters
    ----------
    path
        Target directory.
    config
        JSON-serialisable configuration.
    arrays
        Numeric arrays stored in ``weights.safetensors``.
    overwrite
        Replace an existing empty or model directory (:func:`check_replaceable`); otherwise
        an existing ``path`` is an error.

    Returns
    -------
    The directory written.
    """
    path = as_path("path", path)
    try:
        check_replaceable(path)  # first: overwrite=True would not replace what it refuses
        exists = path.exists()
    except OSError as error:  # a name too long for the file system
        raise PerturbsimError(
            f"cannot write a model to {str(path)!r}: {os_reason(error)}"
        ) from None
    if exists and not check_flag("overwrite", overwrite):
        raise PerturbsimError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    check_writable_place(path, "a model to")
    staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as error:
        raise PerturbsimError(
            f"cannot write a model to {str(path)!r}: {os_reason(error)}"
        ) from None
    try:
        weights = staging / WEIGHTS_FILE
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(weights))
        os.chmod(weights, new_file_mode())  # safetensors writes it readable by its owner only
        with weights.open("rb") as handle:  # on disk before the old model is retired
            os.fsync(handle.fileno())
        full = {
            "format_version": FORMAT_VERSION,
            **config,
            ARRAY_SHAPES: {k: list(np.shape(v)) for k, v in arrays.items()},
            "weights_sha256": _sha256(weights),
        }
        full[CONFIG_CHECKSUM] = _config_sha256(full)
        with (staging / CONFIG_FILE).open("w") as handle:
            json.dump(full, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            retired = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            path.rename(retired)
            try:
                staging.rename(path)
            except BaseException:  # put the previous model back before the error goes on
                retired.rename(path)
                raise
            _remove_retired(retired, path)
        else:
            staging.rename(path)
    except (OSError, SafetensorError) as error:  # a full disk, a file system gone read-only
        raise PerturbsimError(
            f"cannot write a model to {str(path)!r}: {os_reason(error)}"
        ) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _remove_retired(retired: Path, path: Path) -> None:
    """Delete the previous model, renamed aside; if it cannot be, say where it is left.

    The new model is in place by then: a previous one that cannot be deleted (write-protected,
    another user's) is left as ``retired`` with a warning, not an error.
    """
    try:
        shutil.rmtree(retired)
    except OSError as error:
        logger.warning(
            "saved the model to %r, but its previous model could not be deleted (%s): it is "
            "left in %r",
            str(path),
            os_reason(error),
            str(retired),
        )


def _screen_hint(path: Path) -> str:
    """A note for a screen's file or store (``.h5ad``, ``.zarr``) given where a model goes."""
    if path.suffix.lower() in (".h5ad", ".zarr") and path.exists():
        return " (a screen's file: give the folder of a saved model here)"
    return ""


def read_model_dir(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a directory written by :func:`write_model_dir`.

    Raises
    ------
    PerturbsimError
        If ``path`` is no path, the directory or a file is missing (named where a save into
        it was interrupted), the config is not valid
        JSON or was changed
        since it was saved (its recorded checksum; files saved before it was kept have
        none), or the weights do not match their recorded checksum (tampered or truncated).
    """
    path = as_path("path", path)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not path.is_dir():
        pattern = f".{glob.escape(path.name)}.old-*"
        retired = sorted(path.parent.glob(pattern), key=lambda p: p.stat().st_mtime)
        if path.name and retired and not path.exists():
            raise PerturbsimError(
                f"no model directory at {str(path)!r}: a save into it was interrupted, and its "
                f"previous model is in {str(retired[-1])!r} (rename it back to load it)"
            )
        staged = sorted(path.parent.glob(f".{glob.escape(path.name)}.tmp-*")) if path.name else []
        if staged and not path.exists():
            raise PerturbsimError(
                f"no model directory at {str(path)!r}: a save into it stopped before it finished "
                f"(its partial files are in {str(staged[-1])!r}: delete them and save again)"
            )
        raise PerturbsimError(f"no model directory at {str(path)!r}{_screen_hint(path)}")
    for needed in (config_file, weights_file):
        if not needed.is_file():
            what = (
                " (it holds results, not a model: a model is saved by `perturbsim train` or "
                "model.save)"
                if (path / RESULTS_MARKER).is_file()
                else _screen_hint(path)
            )
            raise PerturbsimError(f"model directory {str(path)!r} lacks {needed.name}{what}")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PerturbsimError(
            f"{str(config_file)!r} is not valid JSON: {error_reason(err)}"
        ) from None
    except OSError as err:
        raise PerturbsimError(f"cannot read {str(config_file)!r}: {os_reason(err)}") from None
    version = config.get("format_version") if isinstance(config, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise PerturbsimError(
            f"{str(path)!r} was written by a newer perturbsim (model format {version}); this "
            f"version reads format {FORMAT_VERSION}: upgrade perturbsim to load it"
        )
    if type(version) is not int or version != FORMAT_VERSION:  # not True, not 1.0
        raise PerturbsimError(
            f"{str(config_file)!r} is not a perturbsim model config (format_version "
            f"{FORMAT_VERSION} expected)"
        )
    if CONFIG_CHECKSUM not in config:  # files saved before it was kept; or its line deleted
        logger.warning(
            "%r records no checksum of itself (saved by an older perturbsim, or edited): its "
            "settings are read unchecked; save the model again to check them on every load",
            str(config_file),
        )
    elif config[CONFIG_CHECKSUM] != _config_sha256(config):
        raise PerturbsimError(
            f"{str(config_file)!r} was changed since the model was saved (its checksum "
            "differs); save the model again"
        )
    if "weights_sha256" not in config:
        raise PerturbsimError(
            f"{str(config_file)!r} records no checksum of the weights (edited by hand?); "
            "save the model again"
        )
    try:
        weights_checksum = _sha256(weights_file)
    except OSError as err:
        raise PerturbsimError(f"cannot read {str(weights_file)!r}: {os_reason(err)}") from None
    if weights_checksum != config["weights_sha256"]:
        raise PerturbsimError(
            f"{str(weights_file)!r} does not match the checksum in config.json "
            "(tampered or truncated); save the model again"
        )
    try:
        arrays = load_file(str(weights_file))
    except (SafetensorError, OSError, TypeError, ValueError, AttributeError) as err:
        # numpy reads no bfloat16 or float8: a TypeError or AttributeError from safetensors
        raise PerturbsimError(f"cannot read {str(weights_file)!r}: {error_reason(err)}") from None
    _check_shapes(weights_file, config.get(ARRAY_SHAPES), arrays)
    _check_values(weights_file, arrays)
    return config, arrays


def _check_values(weights_file: Path, arrays: dict[str, np.ndarray]) -> None:
    """Refuse arrays holding NaN or infinity, which no model saves.

    Read back, they would turn into NaN predictions far from the file that held them.
    """
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise PerturbsimError(
                f"{str(weights_file)!r}: array {name!r} holds a non-finite value, which no "
                "model saves (edited?); save the model again"
            )


def _check_shapes(weights_file: Path, saved: object, arrays: dict[str, np.ndarray]) -> None:
    """Refuse weights whose arrays are not those the config recorded, by name and shape.

    A weights file replaced and its checksum recomputed would otherwise load, and an
    array of another shape be read by a model that never checks it. Files saved before
    the shapes were kept (no record) are not checked.
    """
    if saved is None:
        return
    shapes = isinstance(saved, dict) and all(
        isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in v)
        for v in saved.values()
    )
    if not shapes:
        raise PerturbsimError(
            f"the array_shapes of {str(weights_file.parent / 'config.json')!r} are not a "
            "record of shapes (edited?); save the model again"
        )
    recorded = {str(k): list(v) for k, v in saved.items()}
    held = {k: list(v.shape) for k, v in arrays.items()}
    if recorded == held:
        return
    differ = sorted(set(recorded) ^ set(held)) or sorted(
        k for k in held if recorded.get(k) != held[k]
    )
    name = differ[0]
    raise PerturbsimError(
        f"{str(weights_file)!r} does not hold the arrays config.json recorded: {name!r} "
        f"{'missing' if name not in held else tuple(held[name])} where "
        f"{'none' if name not in recorded else tuple(recorded[name])} was saved (edited?); "
        "save the model again"
    )


def check_array_sizes(
    model: str, arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int | str, ...]]
) -> None:
    """Refuse a saved ``model``'s arrays whose shapes disagree with the sizes its config states.

    The weights' record of their shapes (:func:`read_model_dir`) holds against a weights
    file replaced; this holds against a config edited by hand (its checksum line deleted)
    whose genes or lists no longer fit the arrays, which numpy would meet deep inside a
    prediction, or never (a row too many is silently never read).

    Parameters
    ----------
    model
        The model's name, for messages.
    arrays
        The weights read, by name.
    expected
        The shape each array must have: a whole number is a size the config states (its
        genes, a list of its options), a name a size it leaves free (an embedding's
        components) that every array naming it shares, as the first of them has it. An
        array the weights lack is not checked (files saved before it was kept lack it).

    Raises
    ------
    PerturbsimError
        One line naming the array, its shape and the shape due.
    """
    free: dict[str, tuple[int, str]] = {}  # a free size: its value, the array that set it
    for name, dims in ((n, d) for n, d in expected.items() if n in arrays):
        shape = np.shape(arrays[name])
        if len(shape) == len(dims):
            for dim, size in zip(dims, shape, strict=True):
                if isinstance(dim, str):
                    free.setdefault(dim, (size, name))
        due = tuple(free[d][0] if isinstance(d, str) and d in free else d for d in dims)
        if shape == due:
            continue
        setters = {free[d][1] for d in dims if isinstance(d, str) and d in free} - {name}
        source = " and ".join(["config.json", *(repr(n) for n in sorted(setters))])
        raise PerturbsimError(
            f"the saved {model} model's array {name!r} has shape {_shape_text(shape)} where "
            f"{_shape_text(due)} is due (as {source} give{'' if setters else 's'} it; edited "
            "by hand?): save the model again"
        )


def _shape_text(dims: tuple[int | str, ...]) -> str:
    """A shape as Python writes a tuple, its free sizes by name: ``(7, 70)``, ``(K,)``."""
    return f"({', '.join(map(str, dims))}{',' if len(dims) == 1 else ''})"
