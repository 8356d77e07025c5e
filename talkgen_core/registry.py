"""Named configs: one lookup rule for every registry (DiT, VAE, wav2vec2, training)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Config = TypeVar("Config")


def lookup_config(registry: Mapping[str, Config], name_or_config: str | Config, kind: str) -> Config:
    """The config registered under an exact name (a config object passes through); an unknown name raises
    ``ValueError`` listing the valid ones."""
    if not isinstance(name_or_config, str):
        return name_or_config
    try:
        return registry[name_or_config]
    except KeyError:
        raise ValueError(
            f"unknown {kind} config {name_or_config!r}; valid names: {', '.join(sorted(registry))}"
        ) from None
