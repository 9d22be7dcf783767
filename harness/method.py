"""The method contract: the one interface the runner, trainer and benchmarks drive.

A method is an ``nn.Module`` subclass of :class:`SLTMethod` registered with :func:`register`
(built-ins) or declared by an installed package in the ``signbench.methods`` entry-point group
(plug-ins: :func:`load_plugins` checks each against the contract, :class:`PluginError`). It
declares ``key``, ``task`` (``"translation"``: text scored by BLEU / ROUGE; ``"recognition"``:
glosses scored by WER), the ``Sample`` streams it reads (``inputs``) and the text resources it
needs; ``stages()`` returns its training schedule (:class:`Stage`), ``training_step(batch,
state)`` its named losses (``"loss"`` is back-propagated), ``generate(batch, ...)`` one string per
batch item. Everything else the application looks up is declared here with a default and a
docstring (the *optional hooks*); a method overrides what it needs.

Layer: this module sits above the core (``harness.ops``, ``data``, ``text``, ``metrics``,
``measure``) and below the methods (``baselines.*``) and the application (``harness.train``,
``evaluate``, ``runner``, ``cli``, ...). It imports only the core; what a method needs from the
application (an evaluator) is passed in as an :class:`Evaluator`. See ``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from importlib import metadata
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from harness.config import ConfigError, TypeMismatch, check_bounds, check_choices, coerce
from harness.data.batching import Batch
from harness.data.sample import STREAMS, Sample
from harness.measure.nvtx import nvtx_range as _nvtx_range
from harness.measure.nvtx import range_name

SCHEDULERS = ("cosine", "noam", "constant", "onecycle")
MONITORS = ("bleu4", "rouge_l", "wer", "loss")
PROFILES = ("tiny", "paper")


# ------------------------------------------------------------------------------------ stages


@dataclass(frozen=True)
class Stage:
    """One training stage.

    ``trainable`` lists parameter-name prefixes that train in this stage (``("",)`` = every
    parameter); ``frozen`` lists prefixes excluded again (e.g. a frozen LLM inside a trainable
    wrapper). ``losses`` names the entries of ``training_step``'s output summed into ``"loss"`` —
    the method computes the sum itself; the field documents the stage and lets the trainer check
    that the step returned them. ``monitor`` is the dev metric that picks the best checkpoint
    (``"bleu4"`` and ``"rouge_l"`` are maximised, ``"wer"`` and ``"loss"`` minimised).
    """

    name: str
    epochs: int
    lr: float = 1e-3
    weight_decay: float = 0.01
    trainable: tuple[str, ...] = ("",)
    frozen: tuple[str, ...] = ()
    losses: tuple[str, ...] = ("loss",)
    scheduler: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    monitor: str = "bleu4"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"stage {self.name!r}: epochs must be >= 0, got {self.epochs}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"stage {self.name!r}: unknown scheduler {self.scheduler!r}; "
                             f"expected one of {SCHEDULERS}")
        if self.monitor not in MONITORS:
            raise ValueError(f"stage {self.name!r}: unknown monitor {self.monitor!r}")

    def trains(self, parameter_name: str) -> bool:
        """Whether the named parameter is trainable in this stage."""
        included = any(parameter_name.startswith(p) for p in self.trainable)
        excluded = any(parameter_name.startswith(p) for p in self.frozen)
        return included and not excluded


@dataclass
class TrainState:
    """Where training is, handed to ``training_step`` (for schedules such as HyperSign's α)."""

    stage: Stage
    stage_index: int
    epoch: int  # within the stage, from 0
    step: int  # optimiser steps taken in this stage
    total_steps: int  # optimiser steps this stage will take
    global_step: int  # optimiser steps over all stages

    @property
    def progress(self) -> float:
        """Fraction of the stage done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))


def scale_epochs(stages: Sequence[Stage], epochs: int | None) -> list[Stage]:
    """Stages with their epochs rescaled so they sum to ``epochs`` (each stage keeps ≥ 1).

    Used by ``signbench run --epochs N`` to shorten or lengthen a method's whole schedule while
    keeping the ratio between its stages.
    """
    if epochs is None:
        return list(stages)
    if epochs < len(stages):
        raise ValueError(f"--epochs {epochs} is fewer than the {len(stages)} training stages")
    total = sum(s.epochs for s in stages) or len(stages)
    scaled = [max(1, round(s.epochs * epochs / total)) for s in stages]
    scaled[-1] = max(1, epochs - sum(scaled[:-1]))
    return [replace(s, epochs=e) for s, e in zip(stages, scaled, strict=True)]


# -------------------------------------------------------------------------------- evaluator


class Evaluator(Protocol):
    """What the application hands a method's :meth:`SLTMethod.extra_metrics`: the evaluation
    batching the runner itself uses, so a method never imports the application."""

    device: torch.device

    def index_batches(self, samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
        """Length-bucketed, unshuffled index batches over ``samples``."""
        ...

    def collate(self, samples: Sequence[Sample], *, with_targets: bool = False) -> Batch:
        """``samples`` collated with the method's streams, on ``device`` (tokenised targets
        too with ``with_targets``)."""
        ...


# ------------------------------------------------------------------------------- the method


#: the stand-in families ``signbench pretrain`` trains (``harness.pretrain``)
STANDIN_KINDS = ("llama", "mbart", "resnet", "vit", "keypoint", "pose")


@dataclass(frozen=True)
class StandIn:
    """A pretrained component a method's paper starts from, and how to build its stand-in.

    ``signbench pretrain`` trains one per declaration on the corpus's training split, with the
    kind of objective the real component had, and the runner passes its path through the config
    option ``field`` — the same option a user's real checkpoint takes (``init``, ``llm_init``,
    ``resnet_init``, ``vit_init``, ...). ``kind`` is one of :data:`STANDIN_KINDS`; ``config`` is
    the JSON-able architecture the method builds the part with (the stand-in must load into it;
    its keys per kind are ``harness.pretrain``'s, docs/pretrain.md); ``paper`` names the real
    checkpoint (e.g. ``"LLaMA-2 7B"``).
    """

    field: str
    kind: str
    config: Mapping[str, Any]
    paper: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STANDIN_KINDS:
            raise ValueError(f"stand-in for {self.field!r}: unknown kind {self.kind!r}; "
                             f"expected one of {STANDIN_KINDS}")


class SLTMethod(nn.Module):
    """Base class of every method (see the module docstring for the contract)."""

    # -- what the method is and reads --------------------------------------------------------
    #: registry name, e.g. ``"hypersign"``
    key: ClassVar[str] = ""
    #: ``"translation"`` (text; BLEU / ROUGE-L) or ``"recognition"`` (glosses; WER)
    task: ClassVar[str] = "translation"
    #: the ``Sample`` streams a batch must carry (``frames``, ``keypoints``, ``poses``, ...);
    #: an instance may narrow it (an ablation that drops a stream)
    inputs: tuple[str, ...] = ()
    #: the named pose formats a batch's ``poses`` must hold (``Sample.poses`` keys; SignX)
    pose_formats: tuple[str, ...] = ()
    #: per stream, how a user can run the method without it (named in the data check's error,
    #: e.g. ``{"lips": "--set use_lipreading=false"}``)
    stream_hints: ClassVar[dict[str, str]] = {}
    #: the runner trains a text tokenizer on the train split and passes ``tokenizer=``
    needs_text: ClassVar[bool] = True
    #: the runner builds a gloss vocabulary and passes ``gloss_vocab=``
    needs_gloss: ClassVar[bool] = False
    #: the runner fits a pseudo-gloss extractor and passes ``pseudo_gloss=``
    needs_pseudo_gloss: ClassVar[bool] = False
    #: the runner passes the training texts as ``train_texts=``
    needs_train_texts: ClassVar[bool] = False
    #: vocabulary size and kind (``harness.text.train_tokenizer``) of the tokenizer trained for it
    tokenizer_vocab_size: ClassVar[int] = 1000
    tokenizer_kind: ClassVar[str | None] = None
    #: frames reach the method as float in [0, 1] instead of uint8
    normalize_frames: ClassVar[bool] = False
    #: per-profile data settings overriding the runner's (``train_size``, ``eval_size``,
    #: ``resolution``, ``batch_size``, ``eval_batch_size``, ``lang``, ...)
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: override sets ``benchmarks/test_methods.py`` measures besides the default
    benchmark_variants: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    #: overrides ``signbench check`` applies at paper size unless ``--full-depth``: the big
    #: pretrained parts (LLaMA, mBART, ViT, ResNet stages) cut to one layer each, every width kept
    check_overrides: ClassVar[dict[str, Any]] = {}

    # -- its configuration -------------------------------------------------------------------
    #: the config dataclass (fields = the options ``--set`` may override)
    config_class: ClassVar[type | None] = None

    #: text resources the runner passed in (``needs_text`` / ``needs_gloss``)
    tokenizer: Any = None
    gloss_vocab: Any = None

    #: decoding settings the runner uses (an instance may set them from its config)
    beam_size: int = 5
    length_penalty: float = 1.0
    max_len: int = 60

    def __init__(self, profile: str) -> None:
        super().__init__()
        self.profile = profile

    # -- the contract ------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        """The training schedule, in order."""
        raise NotImplementedError

    def training_step(self, batch: Batch, state: TrainState) -> dict[str, torch.Tensor]:
        """Named scalar losses of one batch; ``"loss"`` is back-propagated."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, batch: Batch, beam_size: int = 5, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        """One output per batch item: text (translation) or space-separated glosses."""
        raise NotImplementedError

    def forward(self, batch: Batch, state: TrainState) -> dict[str, torch.Tensor]:
        """``training_step`` — so DistributedDataParallel's forward hooks see every step."""
        return self.training_step(batch, state)

    # -- optional hooks (defaults do nothing) -------------------------------------------------

    @classmethod
    def standins(cls, profile: str, overrides: Mapping[str, Any]) -> list[StandIn]:
        """The pretrained components this method starts from at ``profile`` with ``overrides``
        (:class:`StandIn`); the runner trains / reuses a stand-in for each whose ``field`` the
        user did not set. Default: none (the method starts from random weights)."""
        return []

    def extra_metrics(self, split: str, samples: Sequence[Sample], *, device: torch.device,
                      batch_size: int, evaluator: Evaluator) -> dict[str, Any] | None:
        """Figures beyond the task's scores for one evaluated split (stored under ``extra`` in
        the run JSON; ``extra.translation`` / ``extra.recognition`` fill the other task's
        leaderboard columns). ``None``: nothing to add."""
        return None

    def on_epoch_end(self, record: Mapping[str, Any]) -> None:
        """Called by the trainer after each epoch with its history record (e.g. SignX keeps
        checkpoints for averaging)."""

    def on_fit_end(self) -> None:
        """Called by the trainer once training has finished."""

    def resume_state(self) -> dict[str, Any]:
        """In-memory state the hooks keep across epochs (e.g. SignX's top-k snapshots), as
        tensors, lists, dicts and numbers: saved with every checkpoint and handed back to
        :meth:`load_resume_state` on resume, so a resumed run continues exactly. ``{}``: none."""
        return {}

    def load_resume_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`resume_state` returned (on resume, before training goes on)."""

    def param_report(self) -> dict[str, Any] | None:
        """Parameter counts per component for ``signbench params`` (works on ``meta``);
        ``None``: the plain total / trainable counts."""
        return None

    def paper_figures(self) -> dict[str, dict[str, Any]]:
        """Parameter counts the paper states, each beside ours: ``{name: {"ours": int,
        "paper": int, "source": "Table 3"}}`` (``signbench params`` prints the ratio; works on
        ``meta``). Empty: the paper states none."""
        return {}

    def prepare_benchmark(self, profile: str, device: torch.device) -> None:
        """Adjust the built model before ``benchmarks/test_methods.py`` measures it (e.g. a
        frozen LLM cast to bf16 on a GPU)."""

    # -- helpers -----------------------------------------------------------------------------

    @classmethod
    def coerce_overrides(cls, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """``overrides`` parsed against the types of ``config_class``'s fields (:func:`coerce`):
        ``--set`` strings and JSON values become the field's type, or a :class:`ConfigError`
        names the method, the field, the value and the expected type. Unknown fields raise a
        :class:`ConfigError` listing the known ones."""
        config_class = cls.config_class
        if config_class is None or not is_dataclass(config_class):
            raise TypeError(f"{cls.__name__}.config_class must be a dataclass")
        known = {f.name for f in fields(config_class)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"{cls.key}: unknown override(s) {unknown}; known: {sorted(known)}")
        hints = typing.get_type_hints(config_class)
        out = {}
        for name, value in overrides.items():
            try:
                out[name] = coerce(hints.get(name, Any), value)
            except TypeMismatch as e:
                raise ConfigError(f"{cls.key}: {name}={value!r} is not {e.expected}") from None
        return out

    @classmethod
    def build_config(cls, base: Any, overrides: Mapping[str, Any]) -> Any:
        """``base`` (a ``config_class`` instance) with ``overrides`` applied and validated.

        Values are parsed against the fields' types (:meth:`coerce_overrides`); the config's
        own ``validate()`` runs last, its :class:`ConfigError` prefixed with the method key.
        """
        config = replace(base, **cls.coerce_overrides(overrides))
        validate = getattr(config, "validate", None)
        if callable(validate):
            try:
                validate()
            except ConfigError as e:
                message = str(e)
                if not message.startswith(f"{cls.key}:"):
                    raise ConfigError(f"{cls.key}: {message}") from None
                raise
        return config

    def frames_per_batch(self, batch: Batch) -> int:
        """Video frames in ``batch`` (the sum of per-sample lengths), for FPS."""
        return int(batch.lengths.sum().item())

    def count_parameters_by_group(self, groups: dict[str, tuple[str, ...]]
                                  ) -> tuple[int, int, dict[str, int]]:
        """(total, trainable, per-group counts) for ``param_report``: each parameter counts
        towards the first group one of whose name prefixes it starts with (or none); works on
        the ``meta`` device."""
        components = dict.fromkeys(groups, 0)
        total = trainable = 0
        for name, p in self.named_parameters():
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
            for group, prefixes in groups.items():
                if name.startswith(prefixes):
                    components[group] += p.numel()
                    break
        return total, trainable, components

    def config_dict(self) -> dict[str, Any]:
        """The method's configuration for the run JSON (override to add more)."""
        config = getattr(self, "config", None)
        if config is None:
            return {}
        return asdict(config) if is_dataclass(config) else dict(vars(config))

    @contextlib.contextmanager
    def nvtx(self, stage: str) -> Iterator[None]:
        """NVTX range ``slt/<key>/<stage>`` (near-free without a profiler)."""
        with _nvtx_range(range_name(self.key, stage)):
            yield

    def apply_stage(self, stage: Stage) -> list[str]:
        """Set ``requires_grad`` per ``stage``; returns the names of the trainable parameters."""
        names = []
        for name, param in self.named_parameters():
            param.requires_grad_(stage.trains(name))
            if param.requires_grad:
                names.append(name)
        if not names:
            raise ValueError(f"{self.key}: stage {stage.name!r} leaves no parameter trainable "
                             f"(trainable={stage.trainable}, frozen={stage.frozen})")
        return names


# -------------------------------------------------------------------------------- registry

Builder = Callable[..., SLTMethod]
_REGISTRY: dict[str, Builder] = {}
#: the entry-point group of method plug-ins: ``<name> = "package.module:MethodClass"``
ENTRY_POINT_GROUP = "signbench.methods"
TASKS = ("translation", "recognition")
_CONTRACT = ("stages", "training_step", "generate")


class PluginError(ValueError):
    """A ``signbench.methods`` plug-in that cannot be used; the message names the plug-in (entry
    point, target, distribution) and what is wrong with it."""


@dataclass(frozen=True)
class Plugin:
    """One ``signbench.methods`` entry point: ``error`` is ``None`` when it is registered, else
    the one-line problem that keeps it out of the registry."""

    name: str
    target: str  # "package.module:Attribute"
    distribution: str  # "name version"
    error: str | None = None


_PLUGINS: dict[str, Plugin] | None = None  # None: not discovered yet


def register(name: str) -> Callable[[Builder], Builder]:
    """Class / function decorator adding a method builder under ``name``."""

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return wrap


def registered() -> dict[str, Builder]:
    """The registered builders by key (a copy)."""
    return dict(_REGISTRY)


def builder_class(builder: Builder) -> Any:
    """The ``SLTMethod`` class behind a builder (the builder itself when it is a class)."""
    return getattr(builder, "method_class", builder)


def contract_problems(name: str, builder: Any) -> list[str]:
    """What keeps ``builder`` from serving as method ``name`` (empty: nothing): it must be an
    ``SLTMethod`` subclass (or a callable whose ``method_class`` is one) with ``key == name``,
    its own ``stages`` / ``training_step`` / ``generate``, a known ``task`` and known
    ``inputs`` streams (``harness.data.sample.STREAMS``)."""
    cls = builder_class(builder)
    if not (isinstance(cls, type) and issubclass(cls, SLTMethod)):
        what = getattr(cls, "__qualname__", type(cls).__name__)
        return [f"{what} is not an SLTMethod subclass (nor a builder whose method_class is one)"]
    problems = []
    missing = [m for m in _CONTRACT if getattr(cls, m, None) is getattr(SLTMethod, m)]
    if missing:
        problems.append(f"{cls.__name__} does not implement {', '.join(missing)}")
    if cls.key != name:
        problems.append(f"{cls.__name__}.key is {cls.key!r}, not the entry-point name {name!r}")
    if cls.task not in TASKS:
        problems.append(f"{cls.__name__}.task is {cls.task!r}; expected one of {TASKS}")
    problems += _input_problems(cls.__name__, cls.inputs)
    return problems


def _input_problems(owner: str, inputs: Any) -> list[str]:
    if not isinstance(inputs, (tuple, list)) or not all(isinstance(s, str) for s in inputs):
        return [f"{owner}.inputs must be a tuple of stream names, got {inputs!r}"]
    unknown = [s for s in inputs if s not in STREAMS]
    if unknown:
        return [f"{owner}.inputs has unknown stream(s) {unknown}; known streams: {STREAMS}"]
    return []


def _load_plugin(entry: metadata.EntryPoint) -> Plugin:
    """Import one entry point and register it, or return it with the problem that stops it."""
    dist = getattr(entry, "dist", None)
    plugin = Plugin(entry.name, entry.value,
                    f"{dist.name} {dist.version}" if dist is not None else "unknown distribution")
    taken = (_PLUGINS or {}).get(entry.name)
    if taken is not None:
        return replace(plugin, error=f"the name {entry.name!r} is already taken by plug-in "
                                     f"{taken.target} from {taken.distribution}")
    if entry.name in _REGISTRY:
        owner = builder_class(_REGISTRY[entry.name])
        return replace(plugin, error=f"the name {entry.name!r} clashes with the built-in method "
                                     f"{owner.__module__}.{owner.__qualname__}; rename the "
                                     f"entry point")
    before = set(_REGISTRY)
    try:
        builder = entry.load()
    except Exception as err:  # any import failure is the plug-in's problem, reported as a value
        problems = [f"failed to import: {type(err).__name__}: {err}"]
    else:
        problems = contract_problems(entry.name, builder)
    if problems:
        for added in set(_REGISTRY) - before:  # undo what a half-imported plug-in registered
            del _REGISTRY[added]
        return replace(plugin, error="; ".join(problems))
    _REGISTRY[entry.name] = builder  # the entry point decides (its module may @register too)
    return plugin


def load_plugins() -> dict[str, Plugin]:
    """Discover the installed ``signbench.methods`` entry points once (call it after the
    built-ins are imported, so a clashing name is caught) and register those that satisfy the
    contract; returns every plug-in found by name (``"name (distribution)"`` for one refused
    because its name is taken), with its problem when it is not registered."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = {}
        entries = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                         key=lambda e: (e.name, e.value))
        for entry in entries:
            plugin = _load_plugin(entry)
            taken = entry.name in _PLUGINS or (plugin.error is not None
                                               and entry.name in _REGISTRY)
            # a plug-in refused for a name already taken is listed as "name (distribution)"
            _PLUGINS[f"{entry.name} ({plugin.distribution})" if taken else entry.name] = plugin
    return dict(_PLUGINS)


def plugin_error(name: str) -> PluginError | None:
    """The error of plug-in ``name`` when it was found but not registered, else ``None``."""
    plugin = (_PLUGINS or {}).get(name)
    if plugin is None or plugin.error is None:
        return None
    return PluginError(f"plug-in {plugin.name!r} ({plugin.target} from {plugin.distribution}): "
                       f"{plugin.error}")


def forget_plugins() -> None:
    """Unregister every plug-in and forget the discovery (the next :func:`load_plugins` scans
    the environment again, e.g. after a package was installed)."""
    global _PLUGINS
    for plugin in (_PLUGINS or {}).values():
        if plugin.error is None:
            _REGISTRY.pop(plugin.name, None)
    _PLUGINS = None
    importlib.invalidate_caches()


def build(name: str, profile: str = "tiny", **overrides: Any) -> SLTMethod:
    """Build the registered method ``name`` at ``profile`` ("tiny" | "paper"); a plug-in that
    was found but not registered raises its :class:`PluginError`."""
    if name not in _REGISTRY:
        problem = plugin_error(name)
        if problem is not None:
            raise problem
        known = ", ".join(sorted(_REGISTRY)) or "none yet"
        raise KeyError(f"unknown method {name!r}; registered methods: {known}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected 'tiny' or 'paper'")
    method = _REGISTRY[name](profile=profile, **overrides)
    problems = _input_problems(type(method).__name__, method.inputs)
    if problems:
        raise ValueError(f"method {name!r}: {problems[0]}")
    return method


__all__ = [
    "ENTRY_POINT_GROUP",
    "MONITORS",
    "PROFILES",
    "SCHEDULERS",
    "STANDIN_KINDS",
    "TASKS",
    "ConfigError",
    "Evaluator",
    "Plugin",
    "PluginError",
    "SLTMethod",
    "Stage",
    "StandIn",
    "TrainState",
    "build",
    "builder_class",
    "check_bounds",
    "check_choices",
    "contract_problems",
    "forget_plugins",
    "load_plugins",
    "plugin_error",
    "register",
    "registered",
    "scale_epochs",
]
