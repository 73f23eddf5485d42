"""Command-line manners: a version, defaults in --help, and a --help that does not load torch."""

import subprocess
import sys

from nas.cli import build_parser
from nas.run._config import SearchConfig


def test_version_names_the_installed_package(capsys):
    from importlib.metadata import version

    try:
        build_parser().parse_args(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert capsys.readouterr().out.strip() == f"hwnas {version('hwnas')}"


def test_search_help_shows_the_config_defaults():
    parser = build_parser()
    search = next(a for a in parser._actions if a.dest == "command").choices["search"]
    text = search.format_help().replace("\n", " ")
    defaults = SearchConfig()
    assert f"(default: {defaults.search.trials})" in " ".join(text.split())
    assert f"(default: {defaults.supernet.epochs})" in " ".join(text.split())


def test_help_and_import_do_not_load_torch():
    code = (
        "import sys, contextlib, io\n"
        "from nas.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['search', '--help'])\n    except SystemExit:\n        pass\n"
        "import nas\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_lazy_package_still_gives_every_public_name():
    import nas

    for name in nas.__all__:
        assert getattr(nas, name) is not None, name
