"""The application package's shape (issue 29, point 3), read from the source with ``ast``, nothing imported:

(a) no ``ddpm/*.py`` is over 400 lines; (b) the imports among ``ddpm`` modules, at module level and inside
functions, form no cycle; (c) no ``ddpm`` module is imported inside a function (imports hidden there are for
optional dependencies only: matplotlib, numba, cupy, tqdm, ...); (d) no module uses a private (leading
underscore) name of another ``ddpm`` module, imported (``from .x import _y``) or as an attribute (``x._y``).
Every failure names the file and line. The last test feeds each check a small package that breaks its rule.
"""

import ast
import os
from pathlib import Path

PKG = "ddpm"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PKG)
MAX_LINES = 400


def package_sources(root: str = ROOT) -> dict:
    """{module name: source} of every .py file of the package folder (``__init__`` included)."""
    out = {}
    for f in sorted(os.listdir(root)):
        if f.endswith(".py"):
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                out[f[:-3]] = fh.read()
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def package_imports(sources: dict) -> list:
    """Every import of a module of the package: dicts with the importing module ``src``, the imported module
    ``dst`` (``__init__`` for the package itself), ``line``, ``in_function`` and the ``names`` taken from it."""
    found = []

    def add(src, dst, node, in_function, names=()):
        found.append({"src": src, "dst": dst, "line": node.lineno, "in_function": in_function, "names": list(names)})

    for src, text in sources.items():
        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, ast.Import):
                    for a in child.names:
                        parts = a.name.split(".")
                        if parts[0] == PKG:
                            add(src, parts[1] if len(parts) > 1 else "__init__", child, in_function)
                elif isinstance(child, ast.ImportFrom):
                    mod = child.module or ""
                    if child.level == 1:
                        path = mod.split(".") if mod else []
                    elif child.level == 0 and mod.split(".")[0] == PKG:
                        path = mod.split(".")[1:]
                    else:
                        path = None                          # another package
                    if path == []:                           # from . import x / from ddpm import x
                        for a in child.names:
                            if a.name in sources:
                                add(src, a.name, child, in_function)
                            else:
                                add(src, "__init__", child, in_function, [a.name])
                    elif path:
                        add(src, path[0], child, in_function, [a.name for a in child.names])
                visit(child, inside)
        visit(ast.parse(text), False)
    return found


def long_files(sources: dict) -> list:
    """(a): a message for each module over MAX_LINES lines."""
    return [f"{PKG}/{name}.py:{len(text.splitlines())}: {len(text.splitlines())} lines, over {MAX_LINES}"
            for name, text in sources.items() if len(text.splitlines()) > MAX_LINES]


def import_cycles(sources: dict) -> list:
    """(b): a message for a cycle of imports among the package's modules, naming each import on it."""
    edges = {}
    for imp in package_imports(sources):
        if imp["dst"] != imp["src"]:
            edges.setdefault(imp["src"], {}).setdefault(imp["dst"], imp["line"])
    state, stack = {}, []

    def dfs(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(edges.get(u, {})):
            if state.get(v) == "open":
                cycle = stack[stack.index(v):] + [v]
                return " → ".join(f"{PKG}/{a}.py:{edges[a][b]}" for a, b in zip(cycle, cycle[1:])) + f" → {PKG}/{v}.py"
            if v not in state:
                found = dfs(v)
                if found:
                    return found
        stack.pop()
        state[u] = "done"
        return None

    for u in sorted(sources):
        if u not in state:
            found = dfs(u)
            if found:
                return [f"import cycle: {found}"]
    return []


def imports_in_functions(sources: dict) -> list:
    """(c): a message for each import of a package module inside a function."""
    return [f"{PKG}/{i['src']}.py:{i['line']}: imports {PKG}.{i['dst']} inside a function; import it at the top"
            for i in package_imports(sources) if i["in_function"]]


def private_uses(sources: dict) -> list:
    """(d): a message for each private name of another package module imported or read as an attribute."""
    problems = [f"{PKG}/{i['src']}.py:{i['line']}: imports the private name {n} of {PKG}.{i['dst']}"
                for i in package_imports(sources) for n in i["names"] if _private(n)]
    for src, text in sources.items():
        tree = ast.parse(text)
        modules, packages = set(), set()                 # names bound to a package module / to the package
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    if parts[0] == PKG:
                        if a.asname:
                            (modules if len(parts) > 1 else packages).add(a.asname)
                        else:
                            packages.add(PKG)
            elif isinstance(node, ast.ImportFrom) and ((node.level == 1 and not node.module)
                                                       or (node.level == 0 and node.module == PKG)):
                modules.update(a.asname or a.name for a in node.names if a.name in sources)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            v = node.value
            if isinstance(v, ast.Name) and (v.id in modules or v.id in packages):
                problems.append(f"{PKG}/{src}.py:{node.lineno}: uses the private name {v.id}.{node.attr}")
            elif (isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id in packages
                  and v.attr in sources):
                problems.append(f"{PKG}/{src}.py:{node.lineno}: uses the private name {v.value.id}.{v.attr}.{node.attr}")
    return problems


SOURCES = package_sources()


def test_no_module_is_over_400_lines():
    problems = long_files(SOURCES)
    assert not problems, "\n".join(problems)


def test_imports_among_the_modules_have_no_cycle():
    problems = import_cycles(SOURCES)
    assert not problems, "\n".join(problems)


def test_no_package_module_is_imported_inside_a_function():
    problems = imports_in_functions(SOURCES)
    assert not problems, "\n".join(problems)


def test_no_module_uses_a_private_name_of_another():
    problems = private_uses(SOURCES)
    assert not problems, "\n".join(problems)


def test_api_only_re_exports():
    """``ddpm.api`` is the compatibility module: imports only, no definitions of its own."""
    tree = ast.parse(SOURCES["api"])
    own = [f"{PKG}/api.py:{n.lineno}: defines {getattr(n, 'name', type(n).__name__)}" for n in tree.body
           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not own, "\n".join(own)


def test_each_check_catches_what_it_forbids():
    ok = {"__init__": "from .a import f\n", "a": "from . import b\n\ndef f():\n    return b.g()\n",
          "b": "import numpy as np\n\ndef g():\n    import matplotlib\n    return np\n"}
    assert not (long_files(ok) or import_cycles(ok) or imports_in_functions(ok) or private_uses(ok))
    assert long_files({**ok, "b": "x = 1\n" * 401}) == [f"{PKG}/b.py:401: 401 lines, over 400"]
    cycle = import_cycles({**ok, "b": "x = 1\nfrom .a import f\n"})
    assert cycle == [f"import cycle: {PKG}/a.py:1 → {PKG}/b.py:2 → {PKG}/a.py"], cycle
    assert import_cycles({**ok, "b": "def g():\n    from ddpm.a import f\n"})           # hidden in a function
    assert import_cycles({**ok, "b": "import ddpm\n"})                                  # through the package
    assert imports_in_functions({**ok, "b": "def g():\n    from . import c\n", "c": ""}) == [
        f"{PKG}/b.py:2: imports {PKG}.c inside a function; import it at the top"]
    for bad, line in (("from .c import _h\n", 1), ("from ddpm.c import _h\n", 1), ("from . import c\nc._h()\n", 2),
                      ("import ddpm.c as c\nc._h\n", 2), ("import ddpm.c\nddpm.c._h\n", 2),
                      ("from ddpm import c as k\nk._h\n", 2)):
        problems = private_uses({**ok, "b": bad, "c": "def _h():\n    pass\n"})
        assert len(problems) == 1 and problems[0].startswith(f"{PKG}/b.py:{line}: "), (bad, problems)
    assert not private_uses({**ok, "b": "import ddpm\nx = ddpm.__version__\n"})            # dunders are public


CORE = ("schedule", "forward", "mlp", "optim", "train", "sample")


def test_the_reference_core_imports_only_itself_and_train_config_holds_only_algorithm_1():
    """The study path (issue 29): the six core modules of ddpm_ref import no other module of the package,
    and TrainConfig holds Algorithm 1's optimisation settings, no variant (objective, target, σ², t sampling)."""
    import dataclasses

    import ddpm_ref
    root = Path(ddpm_ref.__file__).parent
    for name in CORE:
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module in CORE, f"ddpm_ref/{name}.py:{node.lineno} imports .{node.module}, outside the core"
    assert {f.name for f in dataclasses.fields(ddpm_ref.TrainConfig)} == {
        "steps", "batch_size", "lr", "lr_final_frac", "grad_clip", "ema_decay", "adam_beta1", "adam_beta2", "adam_eps"}
    variant = {f.name for f in dataclasses.fields(ddpm_ref.GeneralTrainConfig)} - {
        f.name for f in dataclasses.fields(ddpm_ref.TrainConfig)}
    assert variant == {"objective", "parametrization", "var_type", "t_sampling", "hybrid_lambda"}
    # respacing state lives on respace.RespacedSchedule, not on the core's Schedule
    schedule_fields = {f.name for f in dataclasses.fields(ddpm_ref.Schedule)}
    assert not {"parent", "t_model"} & schedule_fields
    assert {f.name for f in dataclasses.fields(ddpm_ref.RespacedSchedule)} - schedule_fields == {"parent", "t_model"}
