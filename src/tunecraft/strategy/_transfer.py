"""Phase 0, transfer: start from what is already known instead of searching it.

* :func:`map_config` and :func:`load_prior` carry the best configurations of earlier studies
  into the current space (renamed through common aliases, clipped, completed, reported).
* :func:`default_config` reads the defaults table shipped as ``defaults.json`` (learning rates
  per optimizer, AdamW weight decay 0.01, momentum 0.9, dropout 0.1, batch sizes as powers of
  two...) for the parameters whose names it knows.
* :func:`apply_lr_scaling`: the search runs over the learning rate at a *reference* batch size
  and the objective trains with the rate the scaling rule gives for its batch size, so the
  learning rate and the batch size stop competing for the same effect.
* :func:`narrow_lr` narrows a learning-rate range around an LR-finder suggestion.
* :func:`rank_correlation` and :func:`check_proxy` decide whether a proxy fidelity (short runs,
  a data subset, a smaller model) ranks configurations like the full task.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.space import Categorical, Float, Int, Param, Space
from tunecraft.space._params import _choice_key
from tunecraft.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from tunecraft.storage import Storage
    from tunecraft.study import Study

__all__ = [
    "PriorConfig",
    "ProxyWarning",
    "apply_lr_scaling",
    "canonical_name",
    "check_proxy",
    "default_config",
    "defaults_table",
    "load_prior",
    "map_config",
    "narrow_lr",
    "rank_correlation",
]

_DIRECTIONS = ("minimize", "maximize")
_SELECT = ("best", "portfolio")
_RULES = ("linear", "sqrt")
_TABLE_PATH = Path(__file__).with_name("defaults.json")
#: User attribute of a pipeline trial: the names whose value in ``run_config`` was derived
#: (the learning rate scaled to the batch size), not sampled or fixed.
DERIVED_ATTR = "tc.derived"
#: User attribute of a pipeline's warm-start copy of an earlier phase's trial.
WARM_ATTR = "tc.warm_start"
#: The phases of a pipeline whose trials score configurations on the validation split.
_PIPELINE_PHASES = ("transfer", "explore", "refine")


class ProxyWarning(UserWarning):
    """A proxy fidelity ranks configurations unlike the full task."""


# -- the defaults table -------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _load_table() -> dict[str, Any]:
    with open(_TABLE_PATH, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def defaults_table() -> dict[str, Any]:
    """The shipped defaults table: ``{"aliases": {...}, "params": {canonical: entry}}``.

    An entry holds ``"value"``, optionally ``"by_optimizer"`` (``{optimizer: value}``),
    ``"round": "pow2"`` and a ``"note"``. A fresh copy, safe to change.

    Example:
        >>> defaults_table()["params"]["momentum"]["value"]
        0.9
    """
    return json.loads(json.dumps(_load_table()))


@functools.lru_cache(maxsize=1)
def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for canonical, aliases in _load_table()["aliases"].items():
        index[canonical] = canonical
        for a in aliases:
            index[_normalize(a)] = canonical
    return index


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def canonical_name(name: str) -> str | None:
    """The table's name for a parameter name, or ``None`` when it is not known.

    Aliases resolve (``"lr"`` -> ``"learning_rate"``), and a prefixed name falls back to its
    last part (``"clf__C"`` -> ``"c"``, ``"optimizer.lr"`` -> ``"learning_rate"``).

    Example:
        >>> canonical_name("LR"), canonical_name("model__dropout_rate"), canonical_name("foo")
        ('learning_rate', 'dropout', None)
    """
    index = _alias_index()
    key = _normalize(name)
    if key in index:
        return index[key]
    for sep in ("__", ".", "/"):
        if sep in key:
            last = key.rsplit(sep, 1)[1]
            if last in index:
                return index[last]
    return None


def _entry(table: Mapping[str, Any], canonical: str) -> Mapping[str, Any] | None:
    entry = table.get(canonical)
    if entry is None:
        return None
    if isinstance(entry, Mapping):
        return entry
    return {"value": entry}


def default_config(
    space: Space | Mapping[str, Param | str], table: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Starting values for the parameters of ``space`` whose names the table knows.

    Values are mapped into each domain (clipped; an int rounded, to a power of two for batch
    sizes; a choice matched by value, case or nearest number). Parameters with unknown names
    are left out, and so is a conditional parameter whose parents have no default. The
    optimizer is looked up first, so ``lr`` and ``weight_decay`` follow it (0.1 for SGD, 1e-3
    for AdamW).

    Args:
        space: The search space.
        table: ``{name: value}`` or ``{name: {"value": ..., "by_optimizer": {...}}}`` of your
            own; names are matched like the shipped ones and replace their entries (a plain
            value is used as given, only mapped into the domain).

    Example:
        >>> import tunecraft as tc
        >>> space = tc.Space({
        ...     "optimizer": tc.choice(["sgd", "adamw"]),
        ...     "lr": tc.loguniform(1e-5, 1.0),
        ...     "batch_size": tc.integer(16, 1000, log=True),
        ...     "hidden": tc.integer(16, 256),
        ... })
        >>> default_config(space)
        {'optimizer': 'adamw', 'lr': 0.001, 'batch_size': 32}
        >>> default_config(space, {"optimizer": "sgd", "batch_size": 100})
        {'optimizer': 'sgd', 'lr': 0.1, 'batch_size': 100}
    """
    if not isinstance(space, Space):
        space = Space(space)
    merged: dict[str, Any] = dict(_load_table()["params"])
    if table is not None:
        if not isinstance(table, Mapping):
            raise TypeError(
                "The 'table' parameter of default_config must be a mapping name -> value, "
                f"got {type(table).__name__}."
            )
        for name, entry in table.items():
            merged[canonical_name(str(name)) or _normalize(str(name))] = entry
    config: dict[str, Any] = {}
    names = [n for n in space.names if canonical_name(n) == "optimizer"]
    names += [n for n in space.names if n not in names]
    optimizer: str | None = None
    for name in names:
        p = space[name]
        key = canonical_name(name) or _normalize(name)
        entry = _entry(merged, key)
        if entry is None or "value" not in entry:
            continue
        if p.condition and not all(parent in config for parent in p.condition):
            continue
        if p.condition and not space.is_active(name, config):
            continue
        value = entry["value"]
        by_opt = entry.get("by_optimizer")
        if optimizer is not None and isinstance(by_opt, Mapping):
            value = by_opt.get(optimizer, value)
        mapped, _ = _into_domain(p, value, pow2=entry.get("round") == "pow2")
        if mapped is None:
            continue
        config[name] = mapped
        if key == "optimizer" and isinstance(mapped, str):
            optimizer = _normalize(mapped)
    return {n: config[n] for n in space.names if n in config}


# -- mapping a config into a space --------------------------------------------------------------
def _into_domain(p: Param, value: Any, *, pow2: bool = False) -> tuple[Any, str | None]:
    """``value`` moved into the domain of ``p`` and what was done, or ``(None, why)``."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(p, Categorical):
        if p.contains(value):
            return value, None
        if isinstance(value, str):
            for o in p.options:
                if isinstance(o, str) and _normalize(o) == _normalize(value):
                    return o, f"matched {value!r} to {o!r}"
        numeric = [
            float(o) for o in p.options if isinstance(o, (int, float)) and not isinstance(o, bool)
        ]
        if is_number and numeric and math.isfinite(float(value)):
            v = float(value)
            if v > 0 and all(o > 0 for o in numeric):
                best = min(numeric, key=lambda o: abs(math.log(o) - math.log(v)))
            else:
                best = min(numeric, key=lambda o: abs(o - v))
            option = next(o for o in p.options if o == best and not isinstance(o, bool))
            return option, f"replaced {value!r} by the nearest choice {option!r}"
        return None, f"{value!r} is not one of {list(p.options)!r}"
    if not is_number or not math.isfinite(float(value)):
        return None, f"{value!r} is not a number"
    v = float(value)
    assert isinstance(p, (Float, Int))
    if isinstance(p, Float):
        clipped = min(p.high, max(p.low, v))
        if clipped != v:
            return clipped, f"clipped {value!r} to {clipped!r}, the {_side(v, p)} bound"
        return value if isinstance(value, float) else v, None
    # an int: a power of two when asked and one fits, else the nearest allowed value
    if pow2 and v > 0:
        powers = [2**k for k in range(0, 31) if p.contains(2**k)]
        if powers:
            best = min(powers, key=lambda q: abs(math.log(q) - math.log(v)))
            if best == v:
                return best, None
            return best, f"rounded {value!r} to the power of two {best}"
    clipped = min(float(p.high), max(float(p.low), v))
    k = round((clipped - p.low) / p.step)
    out = int(min(p.high, max(p.low, p.low + k * p.step)))
    if out == v:
        return out, None
    if clipped != v:
        return out, f"clipped {value!r} to {out!r}, the {_side(v, p)} bound"
    return out, f"rounded {value!r} to {out!r}"


def _side(v: float, p: Float | Int) -> str:
    return "lower" if v < p.low else "upper"


def _center(p: Param) -> Any:
    return p.from_unit(0.5)


def map_config(
    config: Mapping[str, Any],
    space: Space | Mapping[str, Param | str],
    *,
    defaults: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Carry a config (for example from an earlier study) into ``space``.

    * a parameter found under another common name is renamed (``learning_rate`` -> ``lr``);
    * a value outside its range is clipped; an int is rounded; an unknown choice is matched by
      case or nearest number, else replaced by the default or the domain's centre;
    * a missing parameter is filled from ``defaults`` (for example :func:`default_config`),
      else with the centre of its domain on its own scale (log where log);
    * keys the space does not have, or that are inactive there, are dropped.

    Args:
        config: The config to map.
        space: The target space.
        defaults: ``{name: value}`` to fill missing parameters with.

    Returns:
        ``(config, notes)``: a config of ``space`` and one sentence per change.

    Example:
        >>> import tunecraft as tc
        >>> space = tc.Space({"lr": tc.loguniform(1e-4, 1e-1), "dropout": tc.uniform(0, 0.5)})
        >>> cfg, notes = map_config({"learning_rate": 0.5, "depth": 3}, space)
        >>> cfg
        {'lr': 0.1, 'dropout': 0.25}
        >>> notes  # doctest: +NORMALIZE_WHITESPACE
        ["renamed 'learning_rate' to 'lr'", "'lr': clipped 0.5 to 0.1, the upper bound",
         "filled missing 'dropout' with 0.25 (the centre of its range)",
         "dropped 'depth': not in the space"]
    """
    if not isinstance(config, Mapping):
        raise TypeError(
            f"The 'config' parameter of map_config must be a dict, got {type(config).__name__}."
        )
    if not isinstance(space, Space):
        space = Space(space)
    defaults = dict(defaults or {})
    out: dict[str, Any] = {}
    notes: list[str] = []
    used: set[str] = set()
    for name in space.names:
        if not space.is_active(name, out):
            continue
        p = space[name]
        key = _find_key(name, config, used, space)
        if key is not None:
            used.add(key)
            if key != name:
                notes.append(f"renamed {key!r} to {name!r}")
            value, note = _into_domain(p, config[key])
            if value is not None:
                out[name] = value
                if note:
                    notes.append(f"{name!r}: {note}")
                continue
            fill, source = _fill(name, p, defaults)
            out[name] = fill
            notes.append(f"{name!r}: {note}; replaced by {fill!r} ({source})")
            continue
        fill, source = _fill(name, p, defaults)
        out[name] = fill
        notes.append(f"filled missing {name!r} with {fill!r} ({source})")
    for key in config:
        if key in used:
            continue
        if key in space.names:
            notes.append(f"dropped {key!r}: inactive in the space for this config")
        else:
            notes.append(f"dropped {key!r}: not in the space")
    return space.validate(out), notes


def _find_key(name: str, config: Mapping[str, Any], used: set[str], space: Space) -> str | None:
    if name in config:
        return name
    canonical = canonical_name(name)
    if canonical is None:
        return None
    for key in config:
        if key not in used and key not in space.names and canonical_name(str(key)) == canonical:
            return str(key)
    return None


def _fill(name: str, p: Param, defaults: Mapping[str, Any]) -> tuple[Any, str]:
    if name in defaults:
        value, _ = _into_domain(p, defaults[name])
        if value is not None:
            return value, "default"
    return _center(p), "the centre of its range"


# -- priors from earlier studies ----------------------------------------------------------------
@dataclass(frozen=True)
class PriorConfig:
    """A configuration carried over from an earlier study.

    Attributes:
        config: The config mapped into the current space.
        notes: What the mapping changed, one sentence each.
        source: Where it came from (``"study 'mlp-v1' trial 17"``, ``"configs[0]"``).
        value: Its value in the source study (``None`` for a bare config).
    """

    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    source: str = ""
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record."""
        return {
            "config": dict(self.config),
            "notes": list(self.notes),
            "source": self.source,
            "value": self.value,
        }


def load_prior(
    prior: str | Study | Sequence[Any],
    space: Space | Mapping[str, Param | str],
    *,
    storage: Storage | str | None = None,
    direction: str = "minimize",
    k: int = 5,
    defaults: Mapping[str, Any] | None = None,
    select: str = "portfolio",
    seed: int = 0,
) -> list[PriorConfig]:
    """The best configurations of earlier studies, mapped into ``space`` (:func:`map_config`).

    Args:
        prior: A study name or a list of names (in ``storage``; the name of a pipeline of
            :func:`~tunecraft.strategy.tune` stands for the complete runs of its transfer,
            explore and refine studies, longest first), a :class:`~tunecraft.Study`
            or a list of them, a list of :class:`~tunecraft.FrozenTrial` or of
            ``(config, value)`` pairs, a list of configs (taken in the order given), or a list
            of such lists of trials or pairs, one per earlier study.
        space: The current space.
        storage: Where named studies live.
        direction: How to rank trials given directly (a study ranks by its own direction).
        k: How many configurations to return at most.
        defaults: Fill values for missing parameters (see :func:`map_config`).
        select: How to choose among several studies. ``"portfolio"`` (the default): the ``k``
            configurations that *together* do best across the studies, chosen greedily: each
            next one is the configuration that most lowers the mean, over studies, of the best
            normalized value among those chosen (the portfolio construction of Auto-sklearn
            2.0, and Pfisterer et al.'s "learning multiple defaults"). A study's values are
            normalized to ``0`` at its best and ``1`` at its median (and capped there), so no
            study dominates by its scale; a configuration a study did not evaluate is scored
            there by a random forest fitted to that study's trials. Studies with fewer than 3
            distinct values do not score (with none that scores, ``"best"`` applies).
            ``"best"``: the best of each study in turn, so every study contributes. With one
            study both give its best ``k``. With 26 LCBench tasks as earlier studies, five
            configurations chosen as a portfolio reached, on five other tasks, the final
            error typical of 50 random full trainings there in 47 of 50 cases; the best of
            each study in turn did in 30 (``benchmarks/lcbench_transfer.py``,
            docs/benchmarks.md).
        seed: Seeds the random forests of ``select="portfolio"``.

    Returns:
        Up to ``k`` :class:`PriorConfig`, best first (for a portfolio: in the order chosen),
        without duplicates after mapping.

    Example:
        >>> import tunecraft as tc
        >>> old = tc.Study({"lr": tc.loguniform(1e-5, 1.0)}, sampler="random", seed=0)
        >>> old.optimize(lambda t: abs(t.config["lr"] - 0.3), n_trials=10)
        >>> space = tc.Space({"lr": tc.loguniform(1e-4, 0.1), "wd": tc.uniform(0, 0.1)})
        >>> best = load_prior(old, space, k=3)
        >>> best[0].source, best[0].config  # doctest: +ELLIPSIS
        ("study '...' trial 3", {'lr': 0.1, 'wd': 0.05})
        >>> best[0].notes  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        ["'lr': clipped 0.29... to 0.1, the upper bound",
         "filled missing 'wd' with 0.05 (the centre of its range)"]
        >>> len(best)  # the next best trials clip to the same config: kept once
        1
    """
    owner = "load_prior"
    check_choice(direction, "direction", owner, _DIRECTIONS)
    check_int(k, "k", owner, low=1)
    check_choice(select, "select", owner, _SELECT)
    check_int(seed, "seed", owner, low=0)
    if not isinstance(space, Space):
        space = Space(space)
    sources = _sources(prior, storage, direction)
    if select == "portfolio" and len(sources) > 1:
        chosen = _portfolio(sources, space, k, defaults, seed)
        if chosen is not None:
            return chosen
    ranked = [records[:k] for records, _ in sources]
    out: list[PriorConfig] = []
    seen: set[tuple[Any, ...]] = set()
    for rank in range(k):
        for records in ranked:
            if rank >= len(records) or len(out) >= k:
                continue
            config, value, source = records[rank]
            mapped, notes = map_config(config, space, defaults=defaults)
            key = tuple(sorted((n, _choice_key(v)) for n, v in mapped.items()))
            if key in seen:
                continue
            seen.add(key)
            out.append(PriorConfig(config=mapped, notes=notes, source=source, value=value))
    return out


_Record = tuple[Mapping[str, Any], float | None, str]
_Source = tuple[list[_Record], str]  # records best first, and the direction they rank by


def _is_list(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes, Mapping))


def _sources(prior: Any, storage: Any, direction: str) -> list[_Source]:
    """One list of ``(config, value, source)`` per study, best first, with its direction."""
    from tunecraft.study import Study

    if isinstance(prior, (str, Study)):
        prior = [prior]
    if not _is_list(prior):
        raise TypeError(
            "The 'prior' parameter of load_prior must be a study name, a Study, or a list of "
            f"names, studies, trials or configs, got {type(prior).__name__}."
        )
    if not prior:
        return []
    if all(_is_list(p) and not _is_pair(p) for p in prior):  # one list per study
        out = []
        for i, p in enumerate(prior):
            if not all(isinstance(x, (FrozenTrial, Mapping)) or _is_pair(x) for x in p):
                raise TypeError(
                    "The 'prior' parameter of load_prior: a list given per study must hold "
                    f"trials, configs or (config, value) pairs; prior[{i}] does not."
                )
            if not p:  # a study with nothing to give
                continue
            ((records, d),) = _sources(p, storage, direction)
            out.append(([(c, v, f"prior[{i}] {label}") for c, v, label in records], d))
        return out
    if all(isinstance(p, (str, Study)) for p in prior):
        out = []
        for p in prior:
            if isinstance(p, Study):
                out.append((_rank_trials(p.trials, p.direction, f"study {p.name!r}"), p.direction))
                continue
            if storage is None:
                raise InvalidParameterError(
                    f"load_prior: study {p!r} is given by name; pass the 'storage' it lives in."
                )
            from tunecraft.storage import get_storage

            out.append(_named_source(get_storage(storage), p))
        return out
    if all(isinstance(p, FrozenTrial) for p in prior):
        return [(_rank_trials(prior, direction, "trials"), direction)]
    if all(isinstance(p, Mapping) for p in prior):
        return [([(p, None, f"configs[{i}]") for i, p in enumerate(prior)], direction)]
    if all(_is_pair(p) for p in prior):
        pairs = [
            FrozenTrial(i, TrialState.COMPLETE, dict(c), value=v) for i, (c, v) in enumerate(prior)
        ]
        return [(_rank_trials(pairs, direction, "pairs"), direction)]
    raise TypeError(
        "The 'prior' parameter of load_prior must hold only study names or Study objects, "
        "only FrozenTrial, only configs, only (config, value) pairs, or only lists of trials "
        "or pairs (one per study)."
    )


def _is_pair(p: Any) -> bool:
    return (
        isinstance(p, (tuple, list))
        and len(p) == 2
        and isinstance(p[0], Mapping)
        and (p[1] is None or isinstance(p[1], numbers.Real))
    )


def _portfolio(
    sources: list[_Source],
    space: Space,
    k: int,
    defaults: Mapping[str, Any] | None,
    seed: int,
) -> list[PriorConfig] | None:
    """Greedy portfolio over ``sources`` (see :func:`load_prior`); ``None`` when no source has
    the 3 distinct values that scoring needs."""
    import numpy as np

    index: dict[tuple[Any, ...], int] = {}
    candidates: list[PriorConfig] = []
    mapped_cache: dict[Any, tuple[dict[str, Any], list[str]]] = {}
    known: list[dict[int, float]] = []  # per source: candidate -> value, lower is better
    for records, direction in sources:
        sign = 1.0 if direction == "minimize" else -1.0
        column: dict[int, float] = {}
        for config, value, label in records:
            try:
                raw: Any = tuple(sorted(config.items()))
                hit = mapped_cache.get(raw)
            except TypeError:  # unhashable values: map every time
                raw, hit = None, None
            if hit is None:
                hit = map_config(config, space, defaults=defaults)
                if raw is not None:
                    mapped_cache[raw] = hit
            mapped, notes = hit
            key = tuple(sorted((n, _choice_key(v)) for n, v in mapped.items()))
            i = index.get(key)
            if i is None:
                i = index[key] = len(candidates)
                candidates.append(
                    PriorConfig(config=mapped, notes=notes, source=label, value=value)
                )
            if value is not None and math.isfinite(value):
                column[i] = min(column.get(i, math.inf), sign * value)
        known.append(column)
    rows = []
    encoded: np.ndarray | None = None
    for column in known:
        values = np.fromiter(column.values(), dtype=float, count=len(column))
        if len(np.unique(values)) < 3:
            continue
        best = float(values.min())
        scale = float(np.median(values)) - best
        if scale <= 0.0:
            scale = float(values.max()) - best
        row = np.full(len(candidates), np.nan)
        row[list(column)] = (values - best) / scale
        missing = np.isnan(row)
        if missing.any():
            if encoded is None:
                encoded = np.nan_to_num(
                    np.stack([space.to_unit(c.config) for c in candidates]), nan=-1.0
                )
            from sklearn.ensemble import RandomForestRegressor

            forest = RandomForestRegressor(
                n_estimators=32, min_samples_leaf=2, random_state=seed, n_jobs=1
            )
            seen = ~missing
            forest.fit(encoded[seen], row[seen])
            row[missing] = forest.predict(encoded[missing])
        rows.append(np.clip(row, 0.0, 1.0))
    if not rows:
        return None
    scores = np.stack(rows)  # sources x candidates, 0 = a study's best, 1 = its median or worse
    alone = scores.mean(axis=0)
    cover = np.ones(len(scores))
    chosen: list[int] = []
    for _ in range(min(k, len(candidates))):
        together = np.minimum(cover[:, None], scores).mean(axis=0)
        together[chosen] = np.inf
        order = np.lexsort((np.arange(len(candidates)), alone, together))
        j = int(order[0])
        chosen.append(j)
        cover = np.minimum(cover, scores[:, j])
    return [candidates[j] for j in chosen]


def _named_source(st: Storage, name: str) -> _Source:
    """The trials of the study ``name``, or of the pipeline ``name`` (the complete runs of
    its studies ``f"{name}.transfer"``, ``.explore`` and ``.refine``, longest runs first)."""
    from tunecraft.exceptions import StudyNotFoundError

    try:
        info = st.get_study(name)
    except StudyNotFoundError as exc:
        studies = [i.name for i in st.list_studies() if not i.name.endswith(".pipeline")]
        phases = [f"{name}.{ph}" for ph in _PIPELINE_PHASES if f"{name}.{ph}" in studies]
        if not phases:
            near = [n for n in studies if n.startswith(f"{name}.")] or studies
            hint = f" The storage holds {', '.join(map(repr, near[:8]))}." if near else ""
            raise StudyNotFoundError(f"load_prior: {exc}{hint}") from None
        trials: list[FrozenTrial] = []
        direction = "minimize"
        for study_name in phases:
            info = st.get_study(study_name)
            direction = info.direction
            trials += st.get_trials(info.study_id, {TrialState.COMPLETE})
        return _rank_trials(trials, direction, f"pipeline {name!r}", by_fidelity=True), direction
    trials = st.get_trials(info.study_id, {TrialState.COMPLETE})
    return _rank_trials(trials, info.direction, f"study {name!r}"), info.direction


def _full_config(t: FrozenTrial) -> dict[str, Any]:
    """The config a trial ran with: its sampled ``config``, completed from ``run_config`` with
    the values fixed for it (a pipeline's narrowing), but never with a derived value (a
    learning rate scaled to the batch size is not the rate the space searches)."""
    config = dict(t.config)
    derived = t.user_attrs.get(DERIVED_ATTR) or ()
    for name, value in t.run_config.items():
        if name not in config and name not in derived:
            config[name] = value
    return config


def _rank_trials(
    trials: Iterable[FrozenTrial], direction: str, label: str, *, by_fidelity: bool = False
) -> list[_Record]:
    """Complete trials with a finite value, best first (``by_fidelity``: longest runs first,
    then best, for the runs of a pipeline's phases at different lengths). A pipeline's
    warm-start copies are left out: each is an earlier phase's run, without its fixed values."""
    usable = [
        t
        for t in trials
        if t.state is TrialState.COMPLETE
        and not t.user_attrs.get(WARM_ATTR)
        and isinstance(t.value, numbers.Real)
        and math.isfinite(float(t.value))
    ]
    sign = 1.0 if direction == "minimize" else -1.0

    def key(t: FrozenTrial) -> tuple[float, float, int]:
        length = -float(t.budget or 0.0) if by_fidelity else 0.0
        return length, sign * float(t.value), t.number  # type: ignore[arg-type]

    usable.sort(key=key)
    return [(_full_config(t), float(t.value), f"{label} trial {t.number}") for t in usable]  # type: ignore[arg-type]


# -- learning rate: scaling rule and range narrowing --------------------------------------------
def apply_lr_scaling(
    config: Mapping[str, Any],
    *,
    rule: str = "linear",
    lr_param: str = "lr",
    batch_param: str = "batch_size",
    reference_batch_size: int,
) -> dict[str, Any]:
    """The config with its learning rate scaled from the reference batch size to its own.

    With a scaling rule the search runs over the learning rate *at the reference batch size*
    (``config[lr_param]``); the objective trains with the rate this function returns, so a
    good rate found at one batch size stays good at the others and the space loses one
    effective dimension. ``"linear"`` multiplies by ``batch_size / reference_batch_size``
    (SGD, Goyal et al. 2017), ``"sqrt"`` by its square root (Adam and AdamW).

    Example:
        >>> apply_lr_scaling({"lr": 0.1, "batch_size": 512}, reference_batch_size=256)
        {'lr': 0.2, 'batch_size': 512}
        >>> apply_lr_scaling({"lr": 1e-3, "batch_size": 256}, rule="sqrt", reference_batch_size=64)
        {'lr': 0.002, 'batch_size': 256}
    """
    owner = "apply_lr_scaling"
    check_choice(rule, "rule", owner, _RULES)
    check_int(reference_batch_size, "reference_batch_size", owner, low=1)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"The 'config' parameter of {owner} must be a dict, got {type(config).__name__}."
        )
    for what, name in (("lr_param", lr_param), ("batch_param", batch_param)):
        if name not in config:
            raise InvalidParameterError(
                f"The '{what}' parameter of {owner} names {name!r}, which the config lacks "
                f"(keys: {', '.join(map(str, config))})."
            )
    lr = check_float(config[lr_param], f"config[{lr_param!r}]", owner, low=0.0)
    batch = check_int(config[batch_param], f"config[{batch_param!r}]", owner, low=1)
    assert lr is not None and batch is not None
    ratio = batch / reference_batch_size
    out = dict(config)
    out[lr_param] = float(lr * (ratio if rule == "linear" else math.sqrt(ratio)))
    return out


def narrow_lr(
    space: Space | Mapping[str, Param | str],
    lr_param: str,
    suggestion: float,
    *,
    factor: float = 10.0,
) -> Space:
    """``space`` with the learning-rate range narrowed to ``[suggestion / factor, suggestion *
    factor]``, inside the original bounds (a suggestion outside them is first clipped in).

    Args:
        space: The search space.
        lr_param: The learning-rate parameter (a float).
        suggestion: The LR finder's suggestion (:func:`tunecraft.train.lr_find`).
        factor: How far on each side, as a ratio (> 1).

    Example:
        >>> import tunecraft as tc
        >>> space = tc.Space({"lr": tc.loguniform(1e-5, 1.0), "wd": tc.uniform(0, 0.1)})
        >>> narrow_lr(space, "lr", 3e-3)["lr"]
        <log-uniform(0.0003, 0.03)>
        >>> narrow_lr(space, "lr", 0.5)["lr"]
        <log-uniform(0.05, 1)>
    """
    owner = "narrow_lr"
    if not isinstance(space, Space):
        space = Space(space)
    if lr_param not in space.names:
        raise InvalidParameterError(
            f"The 'lr_param' parameter of {owner} must name a parameter of the space "
            f"({', '.join(space.names)}), got {lr_param!r}."
        )
    p = space[lr_param]
    if not isinstance(p, Float):
        raise TypeError(
            f"The 'lr_param' parameter of {owner} must name a float parameter, "
            f"got {p.notation()} for {lr_param!r}."
        )
    check_float(suggestion, "suggestion", owner, low=0.0, low_inclusive=False)
    check_float(factor, "factor", owner, low=1.0, low_inclusive=False)
    s = min(p.high, max(p.low, float(suggestion)))
    low, high = max(p.low, s / factor), min(p.high, s * factor)
    low, high = float(f"{low:.10g}"), float(f"{high:.10g}")  # read as people write them
    low, high = max(p.low, low), min(p.high, high)
    params = dict(space.items())
    params[lr_param] = Float(low, high, log=p.log, condition=p.condition)
    return Space(params)


# -- proxies ------------------------------------------------------------------------------------
def _paired(proxy: Any, full: Any, owner: str) -> tuple[list[float], list[float]]:
    if isinstance(proxy, Mapping) and isinstance(full, Mapping):
        keys = [key for key in proxy if key in full]
        xs, ys = [proxy[key] for key in keys], [full[key] for key in keys]
    elif isinstance(proxy, Mapping) or isinstance(full, Mapping):
        raise TypeError(f"{owner}: give two sequences or two mappings, not one of each.")
    else:
        xs, ys = list(proxy), list(full)
        if len(xs) != len(ys):
            raise InvalidParameterError(
                f"{owner}: proxy_values and full_values must have the same length, "
                f"got {len(xs)} and {len(ys)}."
            )
    pairs = []
    for x, y in zip(xs, ys, strict=True):
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{owner}: values must be numbers, got {v!r}.")
        if math.isfinite(float(x)) and math.isfinite(float(y)):
            pairs.append((float(x), float(y)))
    if len(pairs) < 3:
        raise InvalidParameterError(
            f"{owner}: needs at least 3 configurations with finite values at both fidelities, "
            f"got {len(pairs)}."
        )
    return [a for a, _ in pairs], [b for _, b in pairs]


def rank_correlation(
    proxy_values: Sequence[float] | Mapping[Any, float],
    full_values: Sequence[float] | Mapping[Any, float],
) -> float:
    """Spearman rank correlation between the values of the same configurations at a proxy
    fidelity and at the full one (two sequences in the same order, or two mappings paired by
    key); ``nan`` when either side is constant.

    Example:
        >>> rank_correlation([0.3, 0.2, 0.5, 0.1], [0.25, 0.2, 0.4, 0.05])
        1.0
    """
    xs, ys = _paired(proxy_values, full_values, "rank_correlation")
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys)[0])


def check_proxy(
    name: str,
    proxy_values: Sequence[float] | Mapping[Any, float],
    full_values: Sequence[float] | Mapping[Any, float],
    *,
    threshold: float = 0.5,
) -> float:
    """:func:`rank_correlation`, with a :class:`ProxyWarning` naming the proxy when it is below
    ``threshold`` (or cannot be computed), because its ranking is then not to be trusted.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     rho = check_proxy("epochs=1", [1, 2, 3, 4], [4, 3, 2, 1])
        >>> rho, str(caught[0].message)[:40]
        (-1.0, "The proxy 'epochs=1' ranks configuration")
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(
            f"The 'name' parameter of check_proxy must be a non-empty str, got {name!r}."
        )
    check_float(threshold, "threshold", "check_proxy")
    rho = rank_correlation(proxy_values, full_values)
    if math.isnan(rho):
        warnings.warn(
            f"The proxy {name!r} cannot be judged: its values or the full values are all equal.",
            ProxyWarning,
            stacklevel=2,
        )
    elif rho < threshold:
        warnings.warn(
            f"The proxy {name!r} ranks configurations unlike the full task (Spearman "
            f"{rho:.3f} < {threshold:g}); do not trust its ranking: use a longer proxy or a "
            "larger explore share.",
            ProxyWarning,
            stacklevel=2,
        )
    return rho
