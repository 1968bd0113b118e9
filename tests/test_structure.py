"""The house's two floors: the experiment scripts import only the package rnem, rnem imports no
script; and no file is longer than a reader can hold."""
import ast
import glob
import os

from conftest import ROOT

SCRIPTS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "*.py")))
MAX_LINES = 1000


def imported_modules(path: str) -> set:
    """The top-level names of every module a file imports (import a.b, from a.b import c -> a),
    wherever the import stands (inside functions too)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_parse_finds_imports_inside_functions(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("import os.path\nfrom rnem.cli import ConfigError\ndef f():\n    import relational_nem_pixels as P\n")
    assert imported_modules(str(path)) == {"os", "rnem", "relational_nem_pixels"}


def test_no_script_imports_a_script_and_the_package_imports_none():
    assert "relational_nem_bouncing_balls" in SCRIPTS and len(SCRIPTS) == 6, SCRIPTS
    importers = glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "rnem", "*.py"))
    for path in importers:
        wrong = imported_modules(path) & set(SCRIPTS)
        assert not wrong, f"{os.path.relpath(path, ROOT)} imports {sorted(wrong)}: move what it needs into rnem/"


def test_no_file_is_longer_than_a_thousand_lines():
    for path in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True):
        with open(path) as f:
            n = sum(1 for _ in f)
        assert n <= MAX_LINES, f"{os.path.relpath(path, ROOT)} has {n} lines"


def test_every_script_main_runs_under_the_one_wrapper():
    for name in SCRIPTS:
        with open(os.path.join(ROOT, f"{name}.py")) as f:
            tree = ast.parse(f.read())
        main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
        calls = {node.func.id for node in ast.walk(main) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert "run_main" in calls, f"{name}.main does not call rnem.entry.run_main"


def test_run_main_gives_one_line_and_the_documented_exit_code(capsys):
    from rnem.cli import ConfigError
    from rnem.entry import RunFailed, run_main
    from rnem.processes import Interrupted

    def raising(err):
        def work():
            raise err
        return work
    cases = [(ConfigError("--seed must be >= 0 (got -1)"), 2, "error: --seed must be >= 0 (got -1)"),
             (RunFailed("training diverged"), 1, "error: training diverged"),
             (FloatingPointError("overflow"), 1, "error: overflow"),
             (KeyboardInterrupt(), 130, "error: stopped by SIGINT: nothing written"),
             (Interrupted("SIGTERM"), 143, "error: stopped by SIGTERM: nothing written")]
    for err, code, line in cases:
        assert run_main(raising(err)) == code
        out = capsys.readouterr()
        assert out.err == line + "\n" and out.out == "", (err, out)
    assert run_main(lambda: 0) == 0


def test_a_new_dynamics_core_is_one_kind_and_one_display_name():
    # docs/network.md, "Adding a dynamics core": a kind added to rnem.network.KINDS (with its branch of
    # upsilon_forward/backward) and to rnem.names reaches the CLI, the gradient checks and the figures
    # with no other file touched: every place that lists the kinds reads them from those two
    import relational_nem_network as N
    from rnem import names, network
    assert set(network.KINDS) <= set(names.NETWORK_NAMES)
    assert tuple(N.NetworkConfig.__dataclass_fields__["kind"].metadata["choices"]) == network.KINDS
    with open(os.path.join(ROOT, "tests", "test_network.py")) as f:
        checks = f.read()
    assert checks.count('@pytest.mark.parametrize("kind", network.KINDS)') >= 2   # the step and the unrolled EM
