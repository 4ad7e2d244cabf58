"""Recipes: frozen dataclasses loaded strictly from YAML, with ``--set a.b=c`` overrides.

Every key is checked before any work starts. An unknown key fails naming the file and line
(or the ``--set`` that introduced it), the dotted key, the allowed keys and the closest match;
a value of the wrong type fails naming the expected type or choices.

The swappable parts of a model (``model.encoder``, ``model.decoder``, ``model.attention``)
keep their config dataclass beside their code and register it in :mod:`s2s.registry`; the
loader picks the dataclass by the section's ``type`` key. Importing :mod:`s2s.models`
registers every part, so callers import it before :func:`load_recipe`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from s2s import registry
from s2s.errors import ConfigError
from s2s.search.options import DecodeOptions


def opt(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best in the dataclasses
    """A dataclass field with a default and help text (shown by ``s2s train --help-config``)."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def part(kind: str, default_type: str, help: str) -> Any:  # noqa: A002
    """A field holding a registered part's config, chosen by its ``type`` key."""
    return field(default=None, metadata={"help": help, "part": kind, "default_type": default_type})


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class SplitConfig:
    src: str | None = opt(None, "plain-text source file (one sentence a line, .gz allowed); a glob (*, ?, [ ]) "
                                "names shards, paired with tgt's matches in sorted order")
    tgt: str | None = opt(None, "plain-text target file aligned with src (a glob when src is one)")
    path: str | None = opt(None, "one JSONL/TSV/Parquet file holding both fields; a glob (*, ?, [ ]) names "
                                 "shards, read in sorted order")
    hub_split: str | None = opt(None, "split name in the hub dataset (data.hub)")


@dataclass(frozen=True)
class DataConfig:
    hub: str | None = opt(None, "public Hugging Face dataset, used when the local files are absent")
    hub_config: str | None = opt(None, "configuration name of the hub dataset")
    src_field: str = opt("src", "source field name in JSONL/TSV/Parquet/hub records")
    tgt_field: str = opt("tgt", "target field name in JSONL/TSV/Parquet/hub records")
    train: SplitConfig = opt(SplitConfig(), "training split")
    valid: SplitConfig = opt(SplitConfig(), "validation split (loss, train.valid_metric, early stopping)")
    test: SplitConfig = opt(SplitConfig(), "test split (scored by `s2s evaluate --model RUN`)")
    max_src_len: int = opt(100, "drop training pairs whose source has more subword tokens")
    max_tgt_len: int = opt(100, "drop training pairs whose target has more subword tokens")
    truncate_src: bool = opt(False, "truncate training sources longer than max_src_len tokens to max_src_len "
                                    "instead of dropping the pair (validation sources too; references never); "
                                    "decode.max_src_len = 0 then becomes max_src_len, so validation decoding, "
                                    "`s2s translate` from the run and its exported bundle read as many source "
                                    "tokens as training did")
    streaming: bool = opt(False, "read the training split lazily each epoch instead of holding it in memory: "
                                 "pairs are encoded on the fly and bucketed inside a window of shuffle_window "
                                 "pairs, so memory holds one window, not the corpus (s2s.data.streaming); "
                                 "sentencepiece trains on a reservoir sample of vocab.max_sentences pairs; "
                                 "the validation split stays in memory")
    shuffle_window: int = opt(100_000, "streaming: pairs read, shuffled, sorted by length and cut into "
                                       "batches together; batches never mix windows, and the order of the "
                                       "windows follows the files (shuffle a sorted corpus once beforehand)")

    def __post_init__(self) -> None:
        if self.shuffle_window < 1:
            raise ValueError(f"shuffle_window must be >= 1, got {self.shuffle_window}")


@dataclass(frozen=True)
class VocabConfig:
    model_type: Literal["bpe", "unigram"] = opt("bpe", "sentencepiece model type")
    size: int = opt(8000, "vocabulary size (each side when not joint)")
    joint: bool = opt(True, "one vocabulary for source and target")
    character_coverage: float = opt(1.0, "sentencepiece character coverage")
    max_sentences: int = opt(1_000_000, "sentences sampled to train sentencepiece")


@dataclass(frozen=True)
class EmbeddingConfig:
    dim: int = opt(256, "embedding size")
    dropout: float = opt(0.2, "dropout on embeddings")
    tie_output: bool = opt(True, "tie target embeddings and output projection (Press & Wolf, 2017)")
    share_src_tgt: bool = opt(False, "one embedding matrix for both sides (needs vocab.joint)")


@dataclass(frozen=True)
class ModelConfig:
    encoder: Any = part("encoder", "lstm", "encoder: its `type` picks the registered encoder")
    decoder: Any = part("decoder", "lstm", "decoder: its `type` picks the registered decoder")
    attention: Any = part("attention", "bahdanau", "attention: its `type` picks the scorer")
    embeddings: EmbeddingConfig = opt(EmbeddingConfig(), "token embeddings")


@dataclass(frozen=True)
class SamplingConfig:
    """Scheduled sampling (Bengio et al., 2015): the probability of feeding the gold previous
    token, per update i (counted after ``warmup_steps``), floored at ``floor``."""

    schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = opt(
        "constant", "constant: teacher_forcing_ratio; linear: max(floor, linear_start - linear_slope * i); "
                    "exponential: exponential_base ** i; inverse_sigmoid: k / (k + exp(i / k))")
    teacher_forcing_ratio: float = opt(1.0, "constant schedule: probability of feeding the gold token "
                                            "(1 = plain teacher forcing)")
    linear_start: float = opt(1.0, "linear: the probability at i = 0 (the paper's k)")
    linear_slope: float = opt(1e-4, "linear: decrease per update (the paper's c)")
    exponential_base: float = opt(0.9995, "exponential: the base k < 1 of k ** i")
    inverse_sigmoid_k: float = opt(1000.0, "inverse_sigmoid: k >= 1; the probability is 0.5 near i = k ln k")
    floor: float = opt(0.0, "the probability never drops below this (the paper's epsilon)")
    warmup_steps: int = opt(0, "updates of plain teacher forcing before the schedule starts")
    predictions: Literal["argmax", "sample"] = opt(
        "argmax", "the token fed in place of the gold one: the model's argmax, or a sample from "
                  "softmax(logits / temperature)")
    temperature: float = opt(1.0, "softmax temperature for predictions: sample")
    first_pass_gradient: bool = opt(
        False, "transformer decoders (two-pass): let the loss reach the first pass through the fed "
               "predictions (straight-through: the token's embedding forward, softmax(logits) backward)")

    @property
    def enabled(self) -> bool:
        """Whether any update may feed predictions (else plain teacher forcing throughout)."""
        return self.schedule != "constant" or self.teacher_forcing_ratio < 1.0

    def __post_init__(self) -> None:
        for name in ("teacher_forcing_ratio", "linear_start", "floor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.linear_slope < 0:
            raise ValueError(f"linear_slope must be >= 0, got {self.linear_slope}")
        if not 0.0 < self.exponential_base < 1.0:
            raise ValueError(f"exponential_base must be in (0, 1), got {self.exponential_base}")
        if self.inverse_sigmoid_k < 1.0:
            raise ValueError(f"inverse_sigmoid_k must be >= 1, got {self.inverse_sigmoid_k}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


# the metrics a validation decode can be scored with (train.valid_metric); all higher-is-better
ValidMetric = Literal["bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"]


@dataclass(frozen=True)
class TrainConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = opt("adam", "optimizer")
    lr: float = opt(1e-3, "peak learning rate")
    betas: tuple[float, float] = opt((0.9, 0.999), "Adam betas")
    weight_decay: float = opt(0.0, "weight decay")
    momentum: float = opt(0.0, "SGD momentum")
    label_smoothing: float = opt(0.1, "label smoothing (Szegedy et al., 2016)")
    coverage_loss: float = opt(0.0, "weight of the coverage loss sum_t sum_i min(attention, coverage) "
                                    "(See et al., 2017, eq. 12), per target token like the loss; 0 = off")
    clip_norm: float = opt(1.0, "clip the global gradient norm to this (0 = off)")
    max_bad_updates: int = opt(10, "an update whose loss or gradient norm is NaN or infinite is skipped (the "
                                   "gradients dropped, the step still counted), logged and counted; stop with "
                                   "an error after this many in a row (0 = never stop)")
    batch_tokens: int = opt(3500, "target tokens per batch (non-pad, incl. EOS)")
    update_freq: int = opt(1, "accumulate the gradients of this many batches per update (per process under "
                              "torchrun: an update takes update_freq x world size batches)")
    schedule: Literal["constant", "inverse_sqrt", "noam", "plateau"] = opt(
        "constant", "LR schedule (noam: lr is the factor of Vaswani et al.'s eq. 3)")
    warmup_steps: int = opt(0, "linear warmup steps (inverse_sqrt and noam need > 0)")
    plateau_factor: float = opt(0.5, "plateau: LR multiplier when validation stops improving")
    plateau_patience: int = opt(2, "plateau: validations without improvement before decaying")
    min_lr: float = opt(1e-6, "lower bound for the plateau schedule")
    max_steps: int = opt(0, "stop after this many updates (0 = no limit)")
    max_epochs: int = opt(0, "stop after this many epochs (0 = no limit)")
    max_minutes: float = opt(0.0, "stop after this much training wall time (0 = no limit)")
    valid_every: int = opt(500, "validate and checkpoint every N updates")
    valid_bleu: bool = opt(True, "decode the validation set (beam valid_beam) at each validation and score it "
                                 "with valid_metric (false: loss and perplexity only)")
    valid_metric: ValidMetric = opt("bleu", "the metric the validation decode is scored with, written as "
                                            "valid_<metric> in metrics.jsonl: sacrebleu's bleu or chrf, or "
                                            "rouge-score's mean F1 rouge1, rouge2, rougeL or rougeLsum; "
                                            "set best_metric to the same name to select best.pt by it")
    valid_beam: int = opt(1, "beam size of the validation decode")
    best_metric: str = opt("bleu", "validation metric that selects best.pt and drives patience and the plateau "
                                   "schedule: a name in metrics.jsonl (valid_loss, valid_ppl, and "
                                   "valid_<valid_metric> if valid_bleu) or an alias: loss = valid_loss, and "
                                   "each valid_metric choice, e.g. rougeL = valid_rougeL")
    patience: int = opt(0, "early stopping: validations without improvement (0 = off)")
    average_last: int = opt(0, "keep the weights of the last K validations (checkpoints/step-N.pt) and "
                               "average them into checkpoints/averaged.pt when training stops (0 = off)")
    keep_last: int = opt(1, "keep the training states of this many saves of last.pt before the newest as "
                            "checkpoints/last-N.pt (N the update; the newest last-N.pt is last.pt itself, "
                            "a hard link), for --resume to fall back on when last.pt is unreadable (0 = off)")
    log_every: int = opt(50, "write a metrics.jsonl line every N updates")
    threads: int = opt(0, "torch intra-op threads (0 = torch's default)")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "training device")
    amp: Literal["none", "bf16", "fp16"] = opt("none", "autocast precision on GPU")
    progress: bool = opt(True, "show a progress bar")
    sampling: SamplingConfig = opt(SamplingConfig(), "scheduled sampling: feed the model's own "
                                                     "predictions in place of gold tokens")

    def __post_init__(self) -> None:
        for name in ("max_bad_updates", "keep_last", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Recipe:
    name: str = opt("", "run name (defaults to the recipe file's stem)")
    seed: int = opt(1, "seed for weights, dropout and batch order")
    data: DataConfig = opt(DataConfig(), "corpora")
    vocab: VocabConfig = opt(VocabConfig(), "sentencepiece vocabulary")
    model: ModelConfig = opt(ModelConfig(), "architecture")
    train: TrainConfig = opt(TrainConfig(), "training")
    decode: DecodeOptions = opt(DecodeOptions(), "decoding defaults (s2s.search.options)")


# --------------------------------------------------------------------------- loading
_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_env(value: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in a string value."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


class _Origins:
    """Where each dotted key came from: ``file:line`` or the ``--set`` that wrote it."""

    def __init__(self, source: str, lines: dict[str, int]):
        self.source, self.lines, self.overrides = source, lines, {}

    def of(self, dotted: str) -> str:
        """The origin of ``dotted`` or, failing that, of its nearest enclosing key."""
        key = dotted
        while key:
            if key in self.overrides:
                return f"--set {self.overrides[key]}"
            if key in self.lines:
                return f"{self.source}: line {self.lines[key]}"
            # a user's key may itself end in "]" with no "[": only an index is cut at "["
            key = key.rsplit("[", 1)[0] if key.endswith("]") and "[" in key else key.rpartition(".")[0]
        return self.source

    def first(self, *dotted: str) -> str:
        """The origin of the first of ``dotted`` that the recipe or a ``--set`` spells out (a
        two-key error points at the key the user wrote), else of the first one."""
        for key in dotted:
            if key in self.overrides or key in self.lines:
                return self.of(key)
        return self.of(dotted[0])


def _key_lines(node: yaml.Node | None, prefix: str = "", seen: set[int] | None = None) -> dict[str, int]:
    """The line of each dotted key. A node reached again through an alias is not walked again:
    nested aliases would otherwise cost time exponential in their depth, and a recursive one forever."""
    lines: dict[str, int] = {}
    seen = set() if seen is None else seen
    if isinstance(node, yaml.MappingNode) and id(node) not in seen:
        seen.add(id(node))
        for key, value in node.value:
            dotted = f"{prefix}.{key.value}" if prefix else str(key.value)
            lines[dotted] = key.start_mark.line + 1
            lines.update(_key_lines(value, dotted, seen))
    return lines


def apply_override(raw: dict, assignment: str, origins: _Origins | None = None) -> None:
    """Apply one ``section.key=value`` (value parsed as YAML) to the raw recipe dict."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected section.key=value")
    dotted, text = assignment.split("=", 1)
    dotted = dotted.strip()
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"--set {assignment}: empty key in {dotted!r}")
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment}: {'.'.join(keys[:depth + 1])} is not a section")
        node = child
    try:
        node[keys[-1]] = yaml.safe_load(text) if text.strip() else ""
    except (yaml.YAMLError, RecursionError) as err:  # PyYAML recurses once per nesting level
        problem = getattr(err, "problem", None) or "nested too deeply"
        raise ConfigError(f"--set {assignment}: invalid YAML value ({problem}); expected section.key=value") from None
    if origins is not None:
        origins.overrides[dotted] = assignment


# values in errors: YAML aliases can nest a value exponentially large, so its repr is bounded
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 3, 200, 200, 200


def _show(value: Any) -> str:
    return _SHOW.repr(value)


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, dotted: str, origins: _Origins) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it converted."""
    where = origins.of(dotted)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, dotted, origins)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {dotted} = {_show(value)} is not allowed; expected "
                              f"{_type_name(tp)}{_closest(_show(value), [str(c) for c in choices])}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: {dotted} must be a list of {len(args)} values")
        return tuple(_convert(a, v, f"{dotted}[{i}]", origins) for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, dotted, origins)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, (str, int, float)) and not isinstance(value, bool),
    }.get(tp)
    if ok is None:
        raise TypeError(f"config annotation {tp!r} at {dotted} is not supported")
    if not ok:
        raise ConfigError(f"{where}: {dotted} = {_show(value)} has the wrong type; expected {_type_name(tp)}")
    if tp is float:
        try:
            return float(value)
        except OverflowError:  # YAML integers are unbounded
            raise ConfigError(f"{where}: {dotted} = {_show(value)} is too large for a float") from None
    if tp is str:
        return expand_env(str(value))
    return value


def _build_part(kind: str, default_type: str, raw: Any, dotted: str, origins: _Origins) -> Any:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{origins.of(dotted)}: {dotted} must be a section (mapping)")
    name = raw.get("type", default_type)
    entry = registry.lookup(kind, name) if isinstance(name, str) else None  # a list or mapping is unhashable
    if entry is None:
        allowed = registry.names(kind)
        raise ConfigError(f"{origins.of(dotted + '.type')}: {dotted}.type = {_show(name)} is not a "
                          f"registered {kind}; expected one of {allowed}{_closest(_show(name), allowed)}")
    return _build(entry.config, {**raw, "type": name}, dotted, origins)


def _build(cls: type, raw: Any, prefix: str, origins: _Origins) -> Any:
    """Build dataclass ``cls`` from a raw mapping, failing on unknown keys or bad types."""
    section = prefix or "the top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origins.of(prefix)}: {section} must be a section (mapping), got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            allowed = list(fields)
            raise ConfigError(f"{origins.of(dotted)}: unknown key {dotted!r} in section {section!r}; "
                              f"allowed keys: {', '.join(allowed)}{_closest(str(key), allowed)}")
    kwargs = {}
    for name, f in fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if "part" in f.metadata:
            kwargs[name] = _build_part(f.metadata["part"], f.metadata["default_type"],
                                       raw.get(name), dotted, origins)
        elif name in raw:
            kwargs[name] = _convert(hints[name], raw[name], dotted, origins)
        elif dataclasses.is_dataclass(hints[name]):  # build nested defaults so parts resolve
            kwargs[name] = _build(hints[name], {}, dotted, origins)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ checks of part configs
        raise ConfigError(f"{origins.of(prefix)}: {section}: {err}") from None


def recipe_from_dict(raw: dict, source: str = "<recipe>", overrides: list[str] = (),
                     lines: dict[str, int] | None = None) -> Recipe:
    """Build a :class:`Recipe` from a raw mapping plus ``--set`` overrides.

    With ``data.truncate_src`` on and ``decode.max_src_len`` left at 0, the decode section gets
    ``max_src_len = data.max_src_len``: validation decoding, ``s2s translate`` and the exported
    bundle all read the recipe's decode section, so each then cuts sources as training did.
    """
    raw = copy.deepcopy(raw or {})  # overrides must not leak into the caller's dict
    origins = _Origins(source, lines or {})
    for assignment in overrides:
        apply_override(raw, assignment, origins)
    recipe = _build(Recipe, raw, "", origins)
    if recipe.data.truncate_src and recipe.data.max_src_len < 1:
        raise ConfigError(f"{origins.of('data.max_src_len')}: data.max_src_len = {recipe.data.max_src_len} "
                          "with data.truncate_src; expected a positive number of source tokens to keep")
    _check_model_pairs(recipe, origins)
    _check_train_pairs(recipe, origins)
    if recipe.data.truncate_src and recipe.decode.max_src_len == 0:
        decode = dataclasses.replace(recipe.decode, max_src_len=recipe.data.max_src_len)
        recipe = dataclasses.replace(recipe, decode=decode)
    return recipe


# schedules whose rate divides by train.warmup_steps (s2s.training.schedules)
WARMUP_SCHEDULES = ("inverse_sqrt", "noam")


def _encoder_output_size(encoder: Any) -> int | None:
    """The width of the encoder's memory: ``hidden`` per direction (``bidirectional`` doubles
    it); None for a part without ``hidden``."""
    hidden = getattr(encoder, "hidden", None)
    return None if hidden is None else hidden * (2 if getattr(encoder, "bidirectional", False) else 1)


def _check_model_pairs(recipe: Recipe, origins: _Origins) -> None:
    """Model settings that pass one by one but not together: refused here, before the run folder
    gets a file, rather than by the model builder after the vocabularies were trained."""
    model = recipe.model
    dec, att, emb = model.decoder, model.attention, model.embeddings
    entry = registry.lookup("decoder", dec.type)
    allowed = getattr(entry.cls, "attention_types", None) if entry else None
    if allowed is not None and att.type not in allowed:
        raise ConfigError(f"{origins.first('model.attention.type', 'model.decoder.type')}: model.decoder.type = "
                          f"{dec.type!r} attends with model.attention.type in {list(allowed)}, got {att.type!r}")
    hidden, memory = getattr(dec, "hidden", None), _encoder_output_size(model.encoder)
    if emb.tie_output and hidden is not None and hidden != emb.dim:
        where = origins.first("model.embeddings.tie_output", "model.embeddings.dim", "model.decoder.hidden")
        raise ConfigError(f"{where}: model.embeddings.tie_output needs model.decoder.hidden ({hidden}) == "
                          f"model.embeddings.dim ({emb.dim}); set tie_output: false or make the sizes equal")
    if emb.share_src_tgt and not recipe.vocab.joint:
        raise ConfigError(f"{origins.first('model.embeddings.share_src_tgt', 'vocab.joint')}: "
                          "model.embeddings.share_src_tgt needs one joint vocabulary, but vocab.joint is false")
    if att.type == "luong-dot" and None not in (hidden, memory) and hidden != memory:
        raise ConfigError(f"{origins.first('model.attention.type', 'model.decoder.hidden')}: model.attention.type = "
                          f"'luong-dot' needs model.decoder.hidden ({hidden}) == the encoder output size "
                          f"({memory}, from model.encoder.hidden); use luong-general or luong-concat")
    heads = getattr(att, "heads", None)
    size = getattr(att, "hidden", 0) or memory
    if heads and size and size % heads:
        raise ConfigError(f"{origins.first('model.attention.heads', 'model.encoder.hidden')}: model.attention.heads "
                          f"= {heads} must divide the attention size {size} (model.attention.hidden, or when 0 "
                          "the encoder output size from model.encoder.hidden)")


def _check_train_pairs(recipe: Recipe, origins: _Origins) -> None:
    """Training settings that pass one by one but not together (see :func:`_check_model_pairs`)."""
    train = recipe.train
    if train.schedule in WARMUP_SCHEDULES and train.warmup_steps <= 0:
        raise ConfigError(f"{origins.first('train.schedule', 'train.warmup_steps')}: train.schedule = "
                          f"{train.schedule!r} needs train.warmup_steps > 0 (got {train.warmup_steps}): "
                          "its rate divides by the warmup")


def load_recipe(path: str | os.PathLike, overrides: list[str] = ()) -> Recipe:
    """Load and check a YAML recipe; ``name`` defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read recipe: {err}") from None
    try:
        raw = yaml.safe_load(text) or {}
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    except RecursionError:  # PyYAML composes and constructs recursively
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    raw.setdefault("name", path.stem)
    return recipe_from_dict(raw, str(path), overrides, lines)


def recipe_to_dict(recipe: Recipe) -> dict:
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(recipe))


def save_recipe(recipe: Recipe, path: str | os.PathLike) -> None:
    """Write the fully resolved recipe (every default spelled out) as YAML."""
    Path(path).write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False), encoding="utf-8")
