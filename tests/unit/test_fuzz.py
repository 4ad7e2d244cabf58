"""Fuzzing user input (issue 22, item 6): a user's mistake gives one clean error, never a
traceback or a hang, and legal input is never dropped silently.

Each property names the reader's contract it checks. Example counts are small (the suite runs
on 2 busy cores); a watchdog (``faulthandler.dump_traceback_later``) turns a hang into a failure
with the stuck stack, and the one subprocess test runs under a timeout.
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from s2s.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
WATCHDOG_S = 60  # far above any one example; only a hang reaches it


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_S):
    """Abort with every thread's stack if the body runs longer than ``seconds`` (a hang)."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def assert_one_line_naming(err: Exception, *names: str) -> None:
    message = str(err)
    assert "\n" not in message, f"error spans lines: {message!r}"
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"


# --------------------------------------------------------------------------- strategies
# A legal line is UTF-8 text without "\n" that does not end in "\r" (that reads as a CRLF
# ending). Everything else is content: NUL, a lone "\r" inside, U+2028, U+0085, U+000B/C, BOM.
ODD = ["\r", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\ufeff", "\t", " ", "😀", "é"]
legal_char = st.one_of(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), st.sampled_from(ODD))
legal_line = st.text(legal_char, max_size=30).filter(lambda s: not s.endswith("\r"))
legal_lines = st.lists(legal_line, max_size=12)
newline = st.sampled_from(["\n", "\r\n"])

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(max_size=4), inner,
                                                                                 max_size=3)), max_leaves=8)


def write_lines(path: Path, lines: list[str], endings: list[str]) -> None:
    data = "".join(line + end for line, end in zip(lines, endings)).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


# --------------------------------------------------------------------------- 1. data readers
@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.binary(max_size=300), gz=st.booleans())
def test_random_bytes_read_or_fail_with_one_line_naming_the_file(tmp_path, data, gz):
    """Random bytes (invalid UTF-8, NULs, CR/LF mixes; for .gz also a cut or corrupted stream)
    either read or raise DataError naming the file, on one line."""
    from s2s.textio import read_lines

    path = tmp_path / ("in.txt.gz" if gz else "in.txt")
    if gz:  # a real gzip stream, then cut or flipped where the fuzz says
        blob = bytearray(gzip.compress(data))
        cut = data[0] % len(blob) if data else len(blob)
        for i in range(10, len(blob), 7 + (data[-1] if data else 0)):
            blob[i] ^= data[i % len(data)] if data else 0
        path.write_bytes(bytes(blob[:max(cut, 1)] if data and data[0] % 3 == 0 else blob))
    else:
        path.write_bytes(data)
    with watchdog():
        try:
            lines = read_lines(path)
        except DataError as err:
            assert_one_line_naming(err, str(path))
            return
    assert all("\n" not in line for line in lines)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(lines=legal_lines, endings=st.lists(newline, min_size=12, max_size=12), gz=st.booleans(),
       last_newline=st.booleans())
def test_legal_lines_come_back_unchanged_and_counted(tmp_path, lines, endings, gz, last_newline):
    """Plain text (and .gz): every legal line comes back as written, "\\n" or "\\r\\n" ended,
    the last one with or without its newline; U+2028, U+0085, NUL and a lone "\\r" split nothing."""
    from s2s.textio import read_lines

    endings = endings[:len(lines)]
    if lines and lines[-1] and not last_newline:  # (an empty last line without one is no line at all)
        endings[-1] = ""
    path = tmp_path / ("in.txt.gz" if gz else "in.txt")
    write_lines(path, lines, endings)
    assert read_lines(path) == lines


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(pairs=st.lists(st.tuples(legal_line, legal_line), max_size=8), endings=st.lists(newline, min_size=8,
                                                                                         max_size=8))
def test_jsonl_and_tsv_keep_every_legal_pair(tmp_path, pairs, endings):
    """JSONL (json.dumps keeps non-ASCII as is) and TSV (cells without tabs) give back each pair
    in order; the data layer's only drop is blank pairs, and it counts them."""
    from s2s.config import DataConfig, SplitConfig
    from s2s.data.corpus import read_split

    jsonl = tmp_path / "c.jsonl"
    write_lines(jsonl, [json.dumps({"src": s, "tgt": t}, ensure_ascii=False) for s, t in pairs], endings)
    got = read_split(DataConfig(train=SplitConfig(path=str(jsonl))), "train")
    kept = [(s, t) for s, t in pairs if s.strip() and t.strip()]
    assert list(zip(got.src, got.tgt)) == kept
    assert got.skipped_empty == len(pairs) - len(kept)

    cells = [(s.replace("\t", " "), t.replace("\t", " ")) for s, t in pairs]
    tsv = tmp_path / "c.tsv"
    write_lines(tsv, ["src\ttgt"] + [f"{s}\t{t}" for s, t in cells], ["\n"] + endings)
    got = read_split(DataConfig(train=SplitConfig(path=str(tsv))), "train")
    kept = [(s, t) for s, t in cells if s.strip() and t.strip()]
    assert list(zip(got.src, got.tgt)) == kept
    assert got.skipped_empty == len(cells) - len(kept)


@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES)
@given(src=json_value, tgt=json_value, before=st.integers(0, 3))
def test_jsonl_wrong_types_name_line_and_field(tmp_path, src, tgt, before):
    """A record whose src or tgt is not a string fails naming the file, the line and the field."""
    from s2s.data.corpus import read_jsonl

    path = tmp_path / "c.jsonl"
    good = [json.dumps({"src": "a", "tgt": "b"})] * before
    path.write_text("\n".join(good + [json.dumps({"src": src, "tgt": tgt})]) + "\n", encoding="utf-8")
    if isinstance(src, str) and isinstance(tgt, str):
        assert read_jsonl(path, "src", "tgt") == (["a"] * before + [src], ["b"] * before + [tgt])
        return
    with pytest.raises(DataError) as caught:
        read_jsonl(path, "src", "tgt")
    field = "'src'" if not isinstance(src, str) else "'tgt'"
    assert_one_line_naming(caught.value, str(path), f"line {before + 1}", field, "expected a string")


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(text=st.one_of(st.text(max_size=60), st.builds(lambda v: json.dumps(v), json_value),
                      st.integers(1, 5000).map(lambda n: "[" * n), st.integers(1, 5000).map(lambda n: '{"a":' * n)))
def test_jsonl_and_tsv_random_lines_read_or_fail_cleanly(tmp_path, text):
    """Any line of text in a JSONL or TSV file (deep nesting included) reads or raises DataError."""
    from s2s.data.corpus import read_jsonl, _read_tsv

    for name, read, body in (("c.jsonl", read_jsonl, text), ("c.tsv", _read_tsv, "src\ttgt\n" + text)):
        path = tmp_path / name
        path.write_text(body + "\n", encoding="utf-8", newline="")
        with watchdog():
            try:
                read(path, "src", "tgt")
            except DataError as err:
                assert_one_line_naming(err, str(path))


# --------------------------------------------------------------------------- 2. recipes
yaml_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(10 ** 300, 10 ** 400),
                        st.floats(), st.text(max_size=10), st.sampled_from(["lstm", "transformer", "bahdanau",
                                                                            "noam", "x]", "a[0]", "${HOME}"]))
yaml_value = st.recursive(yaml_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(yaml_scalar, inner, max_size=3)),
                          max_leaves=6)


def paths_of(raw: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict, sections and leaves alike."""
    found = []
    for key, value in raw.items():
        found.append(prefix + (key,))
        if isinstance(value, dict):
            found += paths_of(value, prefix + (key,))
    return found


@pytest.fixture(scope="module")
def valid_raw() -> dict:
    """The tiny recipe dict (as tests/conftest.py's), here over file names that need not exist."""
    import s2s.models  # noqa: F401  (registers the parts the recipe names)

    from tests.conftest import tiny_recipe_dict

    files = {f"{split}.{lang}": Path(f"{split}.{lang}") for split in ("train", "valid", "test") for lang in ("en", "de")}
    return tiny_recipe_dict(files)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_mutated_recipes_load_or_raise_config_error(valid_raw, data):
    """Replace, delete or add keys of a valid recipe at random: it loads or raises ConfigError."""
    from s2s.config import recipe_from_dict

    raw = copy.deepcopy(valid_raw)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths_of(raw) or [("name",)]))
        node = raw
        for key in path[:-1]:
            node = node[key]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            node[path[-1]] = data.draw(yaml_value)
        elif action == "delete":
            node.pop(path[-1], None)
        else:
            node[data.draw(yaml_scalar.filter(lambda k: k is not None and k == k))] = data.draw(yaml_value)
    with watchdog():
        try:
            recipe_from_dict(raw)
        except ConfigError:
            pass


def recipe_yaml(valid_raw: dict) -> st.SearchStrategy[str]:
    valid_text = yaml.safe_dump(valid_raw)
    nested = st.integers(1, 3000).map(lambda n: "model: " + "[" * n + "]" * n)
    laughs = st.integers(1, 30).map(lambda n: "l0: &l0 {a: 1}\n" + "".join(
        f"l{i}: &l{i} {{a: *l{i - 1}, b: *l{i - 1}}}\n" for i in range(1, n)) + f"name: *l{n - 1}\n")
    recursive = st.sampled_from(["model: &a {encoder: *a}\n", "data: &a {train: *a}\n", "a: &a [*a]\n",
                                 "train: &a {betas: [*a, *a]}\n", "x]: 1\n", "model: {encoder: {type: [1]}}\n"])
    mangled = st.tuples(st.integers(0, len(valid_text)), st.text(max_size=20)).map(
        lambda cut: valid_text[:cut[0]] + cut[1] + valid_text[cut[0]:])
    return st.one_of(st.text(max_size=80), nested, laughs, recursive, mangled,
                     st.builds(lambda v: yaml.safe_dump(v), yaml_value))


@settings(max_examples=120, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_random_yaml_files_load_or_raise_config_error(tmp_path, valid_raw, data):
    """A random YAML document (broken syntax, deep nesting, nested or recursive aliases, a valid
    recipe with text spliced in) loads or raises ConfigError, within the watchdog."""
    from s2s.config import load_recipe

    text = data.draw(recipe_yaml(valid_raw))
    path = tmp_path / "r.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with watchdog():
        try:
            load_recipe(path)
        except ConfigError as err:
            assert str(path) in str(err)


set_key = st.one_of(st.text(max_size=20), st.sampled_from(["train.lr", "model.encoder.type", "decode.beam",
                                                            "train.betas", "data.train", "name", "x]", "a..b",
                                                            "train.lr.x", "model.encoder"]))
set_value = st.one_of(st.text(max_size=30), st.builds(lambda v: yaml.safe_dump(v, default_flow_style=True).strip(),
                                                      yaml_value),
                      st.integers(1, 3000).map(lambda n: "[" * n), st.sampled_from(["[", "{a: ", "&a [*a]", "*b",
                                                                                     "!!python/object:os.system x"]))


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(sets=st.lists(st.one_of(st.text(max_size=30), st.builds(lambda k, v: f"{k}={v}", set_key, set_value)),
                     min_size=1, max_size=3))
def test_random_set_overrides_load_or_raise_config_error(valid_raw, sets):
    """``--set`` strings of random keys and YAML values: the recipe loads or raises ConfigError
    naming the ``--set`` when the assignment itself is malformed."""
    from s2s.config import recipe_from_dict

    with watchdog():
        try:
            recipe_from_dict(valid_raw, overrides=sets)
        except ConfigError:
            pass


# --------------------------------------------------------------------------- 3-4. translating
@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    """The session's tiny bundle (tests/conftest.py): 20 training steps of a hidden-8/16 LSTM, exported."""
    return tiny_bundle


@pytest.fixture(scope="module")
def translator(bundle):
    from s2s.runtime import Translator

    return Translator.load(bundle, "fp32", providers=None, threads=1, tune_allocator=False)


unicode_line = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.text(st.sampled_from(ODD + ["\x01", "\x7f", "\u200b", "\u0301", "\U0010fffd"]), max_size=20),
    st.sampled_from(["", " ", "\t \u3000 ", "a man", "ein Hund", "👩‍👩‍👧 a"]),
    st.tuples(st.sampled_from(["the", "a", "😀", "x"]), st.integers(1, 300)).map(lambda w: " ".join([w[0]] * w[1])),
)


def run_translate(bundle: Path, stdin: bytes) -> tuple[int, str, str]:
    """``s2s translate --model BUNDLE`` in this process, stdin as POSIX Python opens it."""
    from s2s.cli.main import main

    stdin_text = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", newline="\n")
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = stdin_text
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), watchdog():
            code = main(["translate", "--model", str(bundle), "--beam", "2", "--device", "cpu"])
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURES)
@given(lines=st.lists(unicode_line.filter(lambda s: "\n" not in s and not s.endswith("\r")), min_size=1, max_size=6),
       crlf=st.booleans())
def test_translate_gives_one_output_line_per_input_line(bundle, lines, crlf):
    """Every stdin line gives exactly one output line, in order; an empty line gives an empty one."""
    stdin = "".join(line + ("\r\n" if crlf else "\n") for line in lines).encode("utf-8")
    code, out, err = run_translate(bundle, stdin)
    assert code == 0, err
    outputs = out.split("\n")
    assert outputs[-1] == "" and len(outputs) - 1 == len(lines), (lines, out)
    for line, output in zip(lines, outputs):
        if line == "":
            assert output == ""


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(line=st.binary(max_size=40))
def test_translate_with_invalid_utf8_on_stdin_fails_in_one_line(bundle, line):
    """Random bytes on stdin: either translated, one line each, or one error line, exit status 2."""
    code, out, err = run_translate(bundle, line + b"\n")
    if code == 0:
        assert out.count("\n") == line.count(b"\n") + 1
    else:
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("s2s translate: error: <stdin>: line"), err


def test_translate_subprocess_never_hangs_and_never_tracebacks(bundle):
    """The real command on bytes no text editor would write: one clean error line, in time."""
    stdin = b"a dog\n\xff\xfe\x00 broken\n\n"
    done = subprocess.run([sys.executable, "-m", "s2s", "translate", "--model", str(bundle), "--device", "cpu"],
                          input=stdin, capture_output=True, timeout=120, cwd=ROOT)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines() == [stderr.strip()] and "line 2" in stderr, stderr


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(lines=st.lists(unicode_line, min_size=1, max_size=8))
def test_runtime_returns_one_string_per_input(translator, lines):
    """The runtime translates any unicode strings (control chars, emoji, long repeats,
    whitespace only, embedded newlines) to one string each, without raising."""
    with watchdog():
        outputs = translator.translate(lines, beam=2)
    assert len(outputs) == len(lines)
    assert all(isinstance(o, str) for o in outputs)
