"""Reading hyperparameter files: YAML with safe loading and no duplicate keys, the shipped
``hyperparams/<algo>.yml`` files, and the choice of an env's entry (its id, ``atari``, ``default``).
Validating an entry is :mod:`rlzoo.zoo.hyperparams_schema`'s work, resolving it :mod:`rlzoo.zoo.config`'s."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.safe_yaml import MAX_DOCUMENT_BYTES, BoundedSafeLoader, YAMLLimitError


class _UniqueKeyLoader(BoundedSafeLoader):
    """Bounded safe loader that rejects duplicate keys in a mapping (``<<`` merges may still be overridden)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            hashable = key in seen
        except TypeError:
            hashable = False
        if hashable:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        try:
            seen.add(key)
        except TypeError:
            pass
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file with the safe loader; malformed YAML is a one-line :class:`ZooError`."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"file '{path}' does not exist")
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise ZooError(f"'{path}' is {path.stat().st_size} bytes, over the limit of {MAX_DOCUMENT_BYTES} "
                           "bytes for a YAML file")
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ZooError(f"cannot read '{path}': {e}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text; errors name ``where`` and the line/column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except YAMLLimitError as e:
        raise ZooError(f"{where}: YAML refused: {e}") from None
    except RecursionError:
        raise ZooError(f"{where}: YAML refused: nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ZooError(f"{where}: malformed YAML{at}: {problem}") from None


def hyperparams_dir() -> Path:
    """Folder holding ``<algo>.yml`` files: ``$RLZOO_HYPERPARAMS_DIR``, the source tree, or the package."""
    env = os.environ.get("RLZOO_HYPERPARAMS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "hyperparams"
    if here.is_dir():
        return here
    try:
        from importlib.resources import files

        return Path(str(files("rlzoo.hyperparams")))
    except (ImportError, ModuleNotFoundError, TypeError):
        return here


def hyperparams_file(algo: str) -> Path:
    """The algorithm's hyperparameter file, as its registry entry names it (``hyperparams/<algo>.yml``)."""
    from rlzoo.algos.registry import get

    spec = get(algo)
    name = spec.hyperparams if spec is not None and spec.hyperparams is not None else f"{algo}.yml"
    return hyperparams_dir() / name  # an absolute path stays as it is


def load_hyperparams_file(path: str | os.PathLike) -> dict[str, dict]:
    """Load a hyperparameter file: a mapping of entry name -> mapping."""
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ZooError(f"{path}: expected a mapping of env ids to hyperparameters, got {type(data).__name__}")
    return data


def tuned_envs(algo: str) -> list[str]:
    """Entry names of ``hyperparams/<algo>.yml`` (empty when there is no file)."""
    path = hyperparams_file(algo)
    if not path.is_file():
        return []
    return [str(k) for k in load_hyperparams_file(path)]


def select_entry(data: dict, env_id: str, atari: bool, where: str) -> tuple[str, dict]:
    """Pick the entry for ``env_id``: the env id itself, else ``atari`` for ALE envs, else ``default``."""
    for name in (env_id, "atari" if atari else None, "default"):
        if name is not None and name in data:
            entry = data[name]
            if entry is None:
                entry = {}
            if not isinstance(entry, dict):
                raise ZooError(f"{where} [{name}]: expected a mapping of hyperparameters, got {entry!r}")
            return name, dict(entry)
    names = ", ".join(map(str, data)) or "none"
    raise ZooError(f"{where} has no entry for {env_id} and no 'default' entry (entries: {names})")
