"""The layering of ARCHITECTURE.md, checked by parsing every module's imports with ``ast``.

Every import counts, including those inside functions (lazy imports still tie a layer to its
dependency). Each module belongs to a layer, its top-level module or subpackage under ``s2s``;
a layer may import the standard library, the s2s layers to its left and a short list of
third-party packages.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "s2s"
STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Rule:
    layers: frozenset[str]  # s2s layers this layer may import ("s2s" is the package root: __version__)
    packages: frozenset[str] | None  # third-party top-level packages; None = anything (cli)


def rule(layers: str, packages: str | None) -> Rule:
    return Rule(frozenset(layers.split()), None if packages is None else frozenset(packages.split()))


BASE = "s2s errors registry config search"
TORCH_STACK = "yaml datasets sentencepiece numpy torch tqdm"
WEB = "fastapi starlette uvicorn pydantic anyio h11 httpx multipart python_multipart prometheus_client"
RULES: dict[str, Rule] = {
    "s2s": rule("s2s", ""),  # s2s/__init__.py: version only, imports nothing heavy
    "errors": rule("s2s errors", ""),
    "registry": rule("s2s registry", ""),
    # UTF-8 (and gzip) text files line by line: the data layer and the torch-free cli share it
    "textio": rule("s2s errors textio", ""),
    # search: hypotheses, constraints, the one beam and greedy loop, DecodeOptions; numpy only.
    # config reads DecodeOptions from it, so s2s/search/__init__.py imports nothing.
    "search": rule("s2s errors search", "numpy"),
    "config": rule("s2s errors registry config search", "yaml"),
    # the bundle format, read, written and validated without torch
    "bundle": rule("s2s errors search bundle", ""),
    # CPU speed code: the glibc allocator settings (standard library only, the runtime may use
    # them) and torch kernels for the models
    "cpu.allocator": rule("s2s cpu.allocator", ""),
    "cpu": rule("s2s cpu cpu.allocator", "torch"),
    "data": rule(f"{BASE} textio data", "yaml datasets sentencepiece numpy"),
    # models need no data code: their special ids come in as arguments, so s2s.data is not allowed
    "models": rule(f"{BASE} cpu models", "yaml torch numpy"),
    # a run directory: recipe, vocabularies, checkpoints, load_run
    "runs": rule(f"{BASE} data models runs", TORCH_STACK),
    "decoding": rule(f"{BASE} data models runs decoding", TORCH_STACK),
    # plots.py draws with matplotlib (imported inside its functions)
    "evaluation": rule(f"{BASE} data models runs decoding evaluation",
                       f"{TORCH_STACK} sacrebleu rouge_score matplotlib"),
    # training validates with the decoder and scores BLEU, so it sits right of decoding and evaluation
    "training": rule(f"{BASE} cpu.allocator data models runs decoding evaluation training", TORCH_STACK),
    # export writes through s2s.bundle and verifies every bundle with the runtime (parity.py)
    "export": rule(f"{BASE} bundle data models runs decoding runtime export", f"{TORCH_STACK} onnx onnxruntime"),
    # the runtime ships without torch or training code: numpy + onnxruntime + sentencepiece only
    "runtime": rule("s2s errors cpu.allocator search bundle runtime", "numpy onnxruntime sentencepiece"),
    "serve": rule("s2s errors search bundle runtime serve", f"numpy onnxruntime sentencepiece {WEB}"),
    "cli": rule(f"{BASE} textio bundle cpu.allocator data models runs training decoding evaluation export runtime serve cli",
                None),
    # s2s/__main__.py (``python -m s2s``) is the cli's second door: it may import the cli only
    "__main__": rule("cli", ""),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[1:3] == ["cpu", "allocator"]:  # the torch-free corner of the CPU speed code
        return "cpu.allocator"
    return parts[1] if len(parts) > 1 else parts[0]


def imported_modules(source: str, module: str, is_package: bool, known: set[str] | frozenset[str] = frozenset()):
    """Yield ``(line, imported module)`` for every import in ``source``, relative ones resolved.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module in ``known``.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            if node.level:
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield node.lineno, candidate if candidate in known else target


def violation(layer: str, imported: str) -> str | None:
    """Why ``layer`` may not import ``imported``, or None when it may."""
    rules = RULES.get(layer)
    if rules is None:
        return f"layer {layer!r} is not in the table"
    top = imported.split(".")[0]
    if top == "s2s":
        target = layer_of(imported)
        if target not in RULES:
            return f"s2s layer {target!r} is not in the table"
        if target not in rules.layers:
            return f"{layer} may import s2s layers {sorted(rules.layers)}"
        return None
    if top in STDLIB or rules.packages is None or top in rules.packages:
        return None
    return f"{layer} may import third-party {sorted(rules.packages)}"


def offenders(module: str, source: str, is_package: bool, known=frozenset()) -> list[str]:
    layer = layer_of(module)
    found = []
    for line, imported in sorted(set(imported_modules(source, module, is_package, known))):
        why = violation(layer, imported)
        if why:
            found.append(f"{module} (line {line}) imports {imported}: {why}")
    return found


# --------------------------------------------------------------------------- the package
def test_the_package_is_found():
    assert {"s2s", "s2s.config", "s2s.errors", "s2s.registry"} <= set(MODULES)


def test_every_module_belongs_to_a_layer_in_the_table():
    unmapped = sorted(m for m in MODULES if layer_of(m) not in RULES)
    assert not unmapped, "modules outside the layer table: " + ", ".join(unmapped)


def test_each_layer_imports_only_what_the_table_allows():
    found = []
    for module, path in MODULES.items():
        found += offenders(module, path.read_text(encoding="utf-8"), path.name == "__init__.py", set(MODULES))
    assert not found, "layering violations:\n  " + "\n  ".join(found)


# --------------------------------------------------------------------------- the checker itself
def test_checker_sees_lazy_and_relative_imports_that_break_the_table():
    runtime = (
        "import numpy\n"
        "import onnxruntime as ort\n"
        "from s2s.errors import BundleError\n"
        "def load():\n"
        "    import torch\n"
        "    from s2s.training import loop\n"
        "    from ..models import build\n"
        "    from . import search\n"
    )
    found = offenders("s2s.runtime.translator", runtime, False, {"s2s.search.loops", "s2s.models.build"})
    assert [f.split(":")[0] for f in found] == [
        "s2s.runtime.translator (line 5) imports torch",
        "s2s.runtime.translator (line 6) imports s2s.training",
        "s2s.runtime.translator (line 7) imports s2s.models.build",
    ]


def test_checker_flags_heavy_imports_in_the_lightweight_layers():
    assert offenders("s2s.config", "import torch\n", False)
    assert offenders("s2s.registry", "from s2s.models import build\n", False)
    assert offenders("s2s.data.corpus", "from s2s import models\n", False, {"s2s.models"})
    assert not offenders("s2s.data.corpus", "import gzip, json\nfrom s2s import config\n", False, {"s2s.config"})
    assert not offenders("s2s.cli.train", "def run():\n    import torch, s2s.training.loop\n", False)
    assert offenders("s2s.plugins", "import os\n", False)  # a new layer must be added to the table


# --------------------------------------------------------------------------- fresh interpreters
HEAVY = ("torch", "numpy", "datasets", "sentencepiece")


def modules_loaded_by(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_importing_config_registry_and_errors_loads_no_torch():
    loaded = modules_loaded_by("import s2s, s2s.config, s2s.registry, s2s.errors")
    assert "yaml" in loaded  # the probe really imported the config loader
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_building_the_cli_parser_loads_no_torch():
    """`s2s --help` stays fast: subcommands import their heavy layers inside ``run``."""
    loaded = modules_loaded_by("from s2s.cli.main import build_parser\nbuild_parser()")
    assert "torch" not in loaded


# the layers a deployment installs without any extra (``pip install s2s``: the torch-free runtime);
# the server adds the ``serve`` extra, the cli may reach any layer, the others need ``train``
TORCH_FREE_LAYERS = frozenset({"s2s", "__main__", "errors", "registry", "search", "bundle", "cpu.allocator",
                               "runtime"})


def extras_of(layer: str) -> tuple[str, ...]:
    """The extras of pyproject.toml whose packages ``layer`` may import, beyond the base ones."""
    if layer in TORCH_FREE_LAYERS:
        return ()
    return {"serve": ("serve",), "cli": ("train", "serve")}.get(layer, ("train",))


def test_every_third_party_import_is_a_declared_dependency():
    """A package that s2s imports but pyproject.toml does not name installs nowhere but here
    (CI failed that way once: ``onnx``, needed by the exporter, came with this machine only).
    Each layer's packages come with the base install or with the extra that layer belongs to, so
    ``pip install s2s`` brings everything the runtime imports and no torch; ``dev`` brings all."""
    import importlib.metadata
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}

    base, extras = names(project["dependencies"]), project["optional-dependencies"]
    assert "torch" not in base and "s2s[train,serve]" in extras["dev"]
    providers = importlib.metadata.packages_distributions()
    missing = []
    for module, path in MODULES.items():
        wanted = extras_of(layer_of(module))
        declared = base.union(*(names(extras[e]) for e in wanted))
        for line, imported in imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            top = imported.split(".")[0]
            if top in STDLIB or top == "s2s" or not top:
                continue
            dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
            if not dists & declared:
                missing.append(f"{module} (line {line}) imports {top}, from {sorted(dists) or 'no installed package'}; "
                               f"declared for it: dependencies {' '.join(f'[{e}]' for e in wanted)}".rstrip())
    assert not missing, "not declared in pyproject.toml:\n  " + "\n  ".join(sorted(set(missing)))


def readme_layer_table(text: str) -> dict[str, tuple[frozenset[str], frozenset[str] | None]]:
    """The README's layer table: layer -> (s2s layers, third-party packages; None for "any")."""
    import re

    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        if len(cells) == 3:
            names = [re.findall(r"`([^`]+)`", c) for c in cells]
            table[names[0][0]] = (frozenset(names[1]), None if cells[2] == "any" else frozenset(names[2]))
    return table


def test_the_readme_layer_table_is_this_table():
    """The design section of README.md shows users the same rules this test enforces."""
    table = readme_layer_table((ROOT / "README.md").read_text(encoding="utf-8"))
    want = {name: (r.layers - {name, "s2s"}, r.packages) for name, r in RULES.items() if name not in ("s2s", "__main__")}
    assert table == want


def test_the_readme_table_reader_reads_cells():
    text = "| layer | a | b |\n|---|---|---|\n| `runtime` | `errors` `search` | `numpy` |\n| `cli` | none | any |\n"
    assert readme_layer_table(text) == {"runtime": (frozenset({"errors", "search"}), frozenset({"numpy"})),
                                        "cli": (frozenset(), None)}
