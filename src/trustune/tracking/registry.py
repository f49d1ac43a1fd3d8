"""The trackers by name: ``--track NAME[:TARGET]`` builds the tracker registered as ``NAME``.

A factory takes the target (None: the tracker's default) and the run's identity, checks what it
can before training (the library is installed, the URI is usable) and raises
:class:`~trustune.errors.ConfigError` naming the fix when not. The built-in factories live in
modules that import their library only when called, so registering them costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from trustune.errors import ConfigError

if TYPE_CHECKING:
    from trustune.tracking.tracker import TrackedRun, Tracker

__all__ = ["TrackerFactory", "known_trackers", "register_tracker", "tracker_factory"]

TrackerFactory: TypeAlias = "Callable[[str | None, TrackedRun], Tracker]"

_FACTORIES: dict[str, TrackerFactory] = {}
_TARGETS: dict[str, str] = {}  # what the part after the colon is: "URI", "DIR"
_BUILT_IN = ("trustune.tracking.mlflow_tracker", "trustune.tracking.tensorboard_tracker")


def register_tracker(
    name: str, *, target: str = "TARGET"
) -> Callable[[TrackerFactory], TrackerFactory]:
    """Register ``factory`` as the tracker ``--track name[:target]`` builds (``target`` names
    what follows the colon in messages: ``URI``, ``DIR``)."""

    def add(factory: TrackerFactory) -> TrackerFactory:
        if name in _FACTORIES:
            raise ConfigError(
                f"tracker {name!r} is registered already; known: {sorted(known_trackers())}"
            )
        _FACTORIES[name], _TARGETS[name] = factory, target
        return factory

    return add


def _load_built_in() -> None:
    import importlib

    for module in _BUILT_IN:
        importlib.import_module(module)  # registers its tracker


def known_trackers() -> dict[str, str]:
    """Tracker name -> what its target is (``{"mlflow": "URI", "tensorboard": "DIR"}``)."""
    _load_built_in()
    return {name: _TARGETS[name] for name in sorted(_FACTORIES)}


def tracker_factory(name: str) -> TrackerFactory:
    _load_built_in()
    if name not in _FACTORIES:
        raise ConfigError(f"unknown tracker {name!r}; known: {sorted(known_trackers())}")
    return _FACTORIES[name]
