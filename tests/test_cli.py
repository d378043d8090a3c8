"""The ``rnnlab`` entry point: subcommand modules, exit codes, error messages."""
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from rnnlab import __version__, cli

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rnnlab {__version__}"


def test_help_lists_every_registered_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "gradcheck" in out


@pytest.mark.parametrize("argv,message", [
    ([], "required"),
    (["no-such-command"], "invalid choice"),
    (["demo", "--steps", "lots"], "invalid int value"),
])
def test_bad_usage_exits_2_with_a_message(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: rnnlab") and message in err


def test_bad_value_exits_2_without_traceback(capsys):
    assert cli.main(["demo", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "rnnlab demo: error: --steps: expected an integer from 1 to 10,000,000, got 0\n"


@pytest.fixture
def command_modules(monkeypatch):
    """Replace the command list with modules built from source strings."""
    from rnnlab.cli import command as cli_main

    def use(sources):
        mods = []
        for name, src in sources.items():
            mod = types.ModuleType(name)
            exec(textwrap.dedent(src), mod.__dict__)
            mods.append(mod)
        monkeypatch.setattr(cli_main, "COMMAND_MODULES", tuple(mods))
    return use


BOOM = """
    def register(subparsers):
        p = subparsers.add_parser("boom", help="raise what --kind says")
        p.add_argument("--kind", default="value")
        p.set_defaults(func=run)

    def run(args):
        if args.kind == "value":
            raise ValueError("bad thing")
        if args.kind == "file":
            raise FileNotFoundError("no such file: x.npz")
        return 3
"""


def test_command_errors_become_exit_2(command_modules, capsys):
    command_modules({"rnnlab_boom_cmd": BOOM})
    assert cli.main(["boom", "--kind", "value"]) == 2
    assert capsys.readouterr().err == "rnnlab boom: error: bad thing\n"
    assert cli.main(["boom", "--kind", "file"]) == 2
    assert capsys.readouterr().err == "rnnlab boom: error: no such file: x.npz\n"
    assert cli.main(["boom", "--kind", "other"]) == 3        # the command's own code


def test_python_dash_m_and_console_script():
    for argv in ([sys.executable, "-m", "rnnlab", "--version"],
                 [str(Path(sys.executable).with_name("rnnlab")), "--version"]):
        if not Path(argv[0]).exists():
            continue                                   # console script not installed here
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == f"rnnlab {__version__}"


# ---------------------------------------------------------------- README

def _code_blocks(lang):
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```\w*\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert first == ['pip install -e ".[fast,plot]" && rnnlab demo',
                     'pip install -e ".[dev]" && python -m pytest -q && '
                     'RNNLAB_IMPL=reference python -m pytest -q']      # both paths
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.replace("pip install -q ", "pip install ") == first[1]


def test_readme_python_examples_run():
    blocks = _code_blocks("python")
    assert blocks, "README has no python example"
    for src in blocks:
        if "import torch" in src:
            pytest.importorskip("torch")
        exec(compile(src, "README.md", "exec"), {})


def test_readme_layout_table_names_every_folder_and_module():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    section = section[:section.index("\n## ", 5)]
    pkg = ROOT / "rnnlab"
    missing = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        if path.name not in section:
            missing.append(str(rel))
    for folder in sorted(p for p in pkg.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        rel = folder.relative_to(pkg).as_posix()
        if f"{rel}/" not in section:
            missing.append(rel + "/")
    assert not missing, f"README layout table does not name: {missing}"
