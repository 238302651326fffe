"""The docs do not drift from the code: every name that docs/*.md and README.md cite exists, and every
picture and file they link to is there.

Cited names are found by their form, wherever they stand in the text (prose, tables, code blocks):

    ddpm_ref.X, ddpm.X, ddpm_fast.X, toy_data.X   optionally with attribute chains (ddpm_ref.Schedule.T,
                                                  ddpm.show.eps_theta); resolved by importing the longest
                                                  prefix that is a module, then getattr (a dataclass's
                                                  fields count as its attributes)
    tests/FILE.py                                 the file exists
    tests/FILE.py::TEST                           FILE parsed with ast holds a module-level function TEST
                                                  (a [param] suffix is ignored; FILE.py::Class::test also works)

A file name that merely starts like a package (docs/ddpm.md, ddpm.md) is not a citation. When a name
is renamed or removed, the failure lists every doc, line and name that still cites it.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import os
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# A package name not glued to a path or another name, then one or more .attribute parts; a file
# extension right after the package (ddpm.md) is a file name, not a citation.
_PY_NAME = re.compile(r"(?<![\w./\\-])(ddpm_ref|ddpm_fast|ddpm|toy_data)"
                      r"(?!\.(?:md|py|npz|npy|png|gif|csv|json|txt|cu|cuh)\b)((?:\.[A-Za-z_]\w*)+)")
_TEST_NAME = re.compile(r"(?<![\w./\\-])tests/([\w/]+\.py)((?:::[A-Za-z_]\w*)*)(\[[^\]\s]*\])?")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def cited_names(text: str) -> list[tuple[int, str]]:
    """(line number, name) of every cited name in ``text``, in order; test ids without their [param]."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        hits = [(m.start(), m.group(1) + m.group(2)) for m in _PY_NAME.finditer(line)]
        hits += [(m.start(), f"tests/{m.group(1)}{m.group(2)}") for m in _TEST_NAME.finditer(line)]
        found += [(lineno, name) for _, name in sorted(hits)]
    return found


def _import_longest_module(parts: list[str]):
    """(module, number of parts it consumed) for the longest importable prefix of ``parts``."""
    module, used = importlib.import_module(parts[0]), 1
    for i in range(2, len(parts) + 1):
        name = ".".join(parts[:i])
        try:
            module, used = importlib.import_module(name), i
        except ModuleNotFoundError as e:
            if e.name != name:                      # the module exists but an import inside it failed
                raise
            break
    return module, used


def _getattr_chain(obj, attrs: list[str]) -> bool:
    for attr in attrs:
        if hasattr(obj, attr):
            obj = getattr(obj, attr)
        elif isinstance(obj, type) and dataclasses.is_dataclass(obj) and attr in {f.name for f in dataclasses.fields(obj)}:
            return attr == attrs[-1]                # a field without a default: no class attribute, nothing below it
        else:
            return False
    return True


def _python_name_exists(name: str) -> bool:
    """As Python reads it (ddpm_ref.forward is the MLP's function), or through the submodule of that
    name where the package's attribute hides it (ddpm.show is a function, ddpm.show.eps_theta is in the module)."""
    parts = name.split(".")
    if _getattr_chain(importlib.import_module(parts[0]), parts[1:]):
        return True
    module, used = _import_longest_module(parts)
    return used > 1 and _getattr_chain(module, parts[used:])


@functools.lru_cache(maxsize=None)
def _test_module(path: Path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _test_name_exists(name: str) -> bool:
    file, *node = name.split("::")
    path = ROOT / file
    if not path.is_file():
        return False
    scope = _test_module(path).body
    for i, part in enumerate(node):
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef) if i == len(node) - 1 else (ast.ClassDef,)
        match = [d for d in scope if isinstance(d, kinds) and d.name == part]
        if not match:
            return False
        scope = getattr(match[0], "body", [])
    return True


def name_exists(name: str) -> bool:
    return _test_name_exists(name) if name.startswith("tests/") else _python_name_exists(name)


def missing_names(text: str) -> list[tuple[int, str]]:
    return [(lineno, name) for lineno, name in cited_names(text) if not name_exists(name)]


def _all_citations():
    return {doc: cited_names(doc.read_text(encoding="utf-8")) for doc in DOCS}


def test_every_name_the_docs_cite_exists():
    cites = _all_citations()
    names = {name for found in cites.values() for _, name in found}
    # A scanner that finds nothing would pass vacuously: the docs cite well over 50 distinct names.
    assert len(names) > 50, f"only {len(names)} cited names found: is the pattern broken?"
    missing = [f"{doc.relative_to(ROOT)}:{lineno}: {name}" for doc, found in cites.items()
               for lineno, name in found if not name_exists(name)]
    assert not missing, "the docs cite names that do not exist:\n" + "\n".join(missing)


def test_the_scanner_catches_drift_and_ignores_file_names():
    text = "\n".join([
        "`ddpm_ref.q_sample` (Eq. 4) and `ddpm_ref.q_sampel` (a typo), `ddpm_ref.Schedule.alpha_bar`,",
        "`ddpm_ref.Schedule.alpha_bar.nope`, ddpm.show.eps_theta, `ddpm.fit(\"moons\")`, toy_data.NAMES.",
        "docs/ddpm.md, [ddpm.md](ddpm.md) and ddpm_fast/cpu.py are files; ddpm_fast.no_such_kernel is not.",
        "tests/test_forward.py::test_q_posterior_equals_gaussian_conditioning, tests/test_forward.py,",
        "tests/test_schedule.py::test_linear_rescaling_keeps_alpha_bar_T_near_zero[21],",
        "tests/test_forward.py::test_no_such_property[3], tests/test_nothing_here.py, tests/test_docs.py::_LINK.",
    ])
    assert [n for _, n in cited_names(text)] == [
        "ddpm_ref.q_sample", "ddpm_ref.q_sampel", "ddpm_ref.Schedule.alpha_bar", "ddpm_ref.Schedule.alpha_bar.nope",
        "ddpm.show.eps_theta", "ddpm.fit", "toy_data.NAMES", "ddpm_fast.no_such_kernel",
        "tests/test_forward.py::test_q_posterior_equals_gaussian_conditioning", "tests/test_forward.py",
        "tests/test_schedule.py::test_linear_rescaling_keeps_alpha_bar_T_near_zero",
        "tests/test_forward.py::test_no_such_property", "tests/test_nothing_here.py", "tests/test_docs.py::_LINK"]
    assert missing_names(text) == [
        (1, "ddpm_ref.q_sampel"), (2, "ddpm_ref.Schedule.alpha_bar.nope"), (3, "ddpm_fast.no_such_kernel"),
        (6, "tests/test_forward.py::test_no_such_property"), (6, "tests/test_nothing_here.py"),
        (6, "tests/test_docs.py::_LINK")]                  # a module-level constant is not a test function


def _relative_links(doc: Path) -> list[tuple[str, Path]]:
    links = []
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue                                         # a URL or an anchor in the same page
        links.append((target, doc.parent / target.split("#")[0]))
    return links


def test_every_figure_link_in_the_docs_points_to_an_existing_picture():
    figures = [(doc, target, path) for doc in DOCS for target, path in _relative_links(doc) if "figures/" in target]
    assert len(figures) >= 6, "docs/tour.md shows the six pictures of docs/make_figures.py"
    bad = [f"{doc.relative_to(ROOT)}: {target}" for doc, target, path in figures
           if not (path.is_file() and path.stat().st_size > 0)]
    assert not bad, "figure links to missing or empty files:\n" + "\n".join(bad)


def test_every_relative_link_in_the_docs_points_to_an_existing_file():
    bad = [f"{doc.relative_to(ROOT)}: {target}" for doc in DOCS for target, path in _relative_links(doc)
           if not path.exists()]
    assert not bad, "links to missing files:\n" + "\n".join(bad)


def test_the_package_docstring_states_the_core_paths_line_count():
    import re
    import ddpm_ref
    root = os.path.dirname(ddpm_ref.__file__)
    count = lambda names: sum(len(open(os.path.join(root, n), encoding="utf-8").read().splitlines()) for n in names)
    core = count(["schedule.py", "forward.py", "mlp.py", "optim.py", "train.py", "sample.py"])
    total = count(sorted(n for n in os.listdir(root) if n.endswith(".py")))
    m = re.search(r"six modules are ([\d,]+) lines .* package's ([\d,]+)", " ".join(ddpm_ref.__doc__.split()))
    assert m, "the package docstring no longer states the core path's line count"
    assert (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) == (core, total)


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _quickstart_commands(text: str) -> list[str]:
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no Quickstart bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_is_a_front_page_with_the_gif_and_quickstart_on_its_first_screen():
    text = _readme()
    lines = text.splitlines()
    assert len(lines) <= 150, f"README.md is {len(lines)} lines; its details belong in docs/"
    first = "\n".join(lines[:40])
    assert re.search(r"!\[[^\]]*\]\(docs/figures/reverse\.gif\)", first), "the reverse-chain GIF is not in the first 40 lines"
    commands = _quickstart_commands(text)
    assert len(commands) == 2, f"the Quickstart has {len(commands)} commands, not two"
    assert all(c in first for c in commands), "the two Quickstart commands are not in the first 40 lines"


def test_ci_runs_the_readmes_test_command_verbatim():
    test_command = _quickstart_commands(_readme())[1]
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in [line.strip() for line in ci], ".ci/run no longer runs the README's test command"


def test_the_readmes_reference_example_runs_algorithms_1_and_2():
    """The README's ddpm_ref-only example, run as written but with 20 training steps and 2 of its points
    sampled on T = 1000 (the sample is checked for its shape only: 20 steps train nothing)."""
    block = re.search(r"## Algorithms 1 and 2 with the reference alone\s+```python\n(.*?)```", _readme(), re.S)
    assert block, "README.md lost its ddpm_ref example"
    code = block.group(1)
    short = re.sub(r"steps=\d+", "steps=20", code)
    short = short.replace("standard_normal((1000, 2))", "standard_normal((2, 2))")
    assert short != code and "steps=20" in short and "(2, 2)" in short, "the example's shape changed: update this test"
    scope: dict = {}
    exec(compile(short, "README.md", "exec"), scope)
    assert scope["losses"].shape == (20,) and scope["x"].shape == (2, 2)
    assert scope["state"]["opt"]["step"] == 20
