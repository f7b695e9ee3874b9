"""How every section is read: its dataclass built from the parsed file (unknown keys,
wrong types and non-finite numbers refused, then the section's own ``validate``) and
command-line values laid over it; ``ConfigError`` names the key that is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import Field
from typing import Any, ClassVar, Protocol, TypeVar


class ConfigError(Exception):
    """A configuration value that cannot be used; ``key`` names it as ``section.key``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration error in {key}: {message}")
        self.key = key
        self.message = message


def need_words(key: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(key, "must be a list of non-empty strings")


class Section(Protocol):
    """A section's dataclass: typed fields with defaults and a ``validate`` method."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def validate(self) -> None: ...


_Section = TypeVar("_Section", bound=Section)

_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}


def _accepted_types(field: Field[Any]) -> tuple[type, ...]:
    """The Python types a field takes, from its annotation ("float", "str | int",
    "list[str]", "dict[str, list[str]]")."""
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    names = [part.strip() for part in annotation.split("|")]
    return tuple(_TYPES[name.split("[")[0]] for name in names)


def _coerce(key: str, value: Any, field: Field[Any]) -> Any:
    """Check one value against its field's type; ints are taken for floats."""
    accepted = _accepted_types(field)
    if isinstance(value, bool):
        ok = bool in accepted
    elif isinstance(value, int) and float in accepted and int not in accepted:
        value, ok = float(value), True
    else:
        ok = isinstance(value, accepted)
    if not ok:
        expected = " or ".join(t.__name__ for t in accepted)
        raise ConfigError(key, f"must be {expected}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    return value


def _set(instance: Section, section: str, values: Mapping[str, Any]) -> None:
    known = instance.__dataclass_fields__
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})"
            )
        setattr(instance, key, _coerce(f"{section}.{key}", value, known[key]))


def load_section(raw: Mapping[str, Any], section: str, cls: type[_Section]) -> _Section:
    """The section ``section`` of the parsed file ``raw`` as a checked ``cls``."""
    values = raw.get(section, {})
    if not isinstance(values, dict):
        raise ConfigError(section, "must be a table")
    instance = cls()
    _set(instance, section, values)
    instance.validate()
    return instance


def apply_overrides(config: _Section, section: str, overrides: Mapping[str, Any]) -> _Section:
    """Lay command-line values over a loaded section (None = not given), checked by the
    same rules as the file's."""
    _set(config, section, {k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config
