"""A harness and a command added from a separate package, through entry points, with no edit here."""

from __future__ import annotations

from flowgraph.cli import main
from flowgraph.testing import installed_package

PLUGIN = '''
from flowgraph import Graph

CALLS = []


class EchoHarness:
    """Runs the graph itself and reports how many results it gave."""

    name = "echo harness"
    scenarios = ("Echo",)

    def add_arguments(self, group):
        group.add_argument("--echo", action="store_true")

    def selected(self, args):
        return args.echo

    def run(self, args):
        report = Graph.from_yaml(args.graph).run_sync()
        CALLS.append(("run", len(report.results)))
        return 0


def register(commands):
    parser = commands.add_parser("hello", help="says hello")
    parser.add_argument("who")
    parser.set_defaults(handler=lambda args: CALLS.append(("hello", args.who)) or 0)
'''


def test_a_harness_and_a_command_from_another_package_join_the_cli(tmp_path, capsys):
    entry_points = {
        "flowgraph.harnesses": {"echo": "echoplugin:EchoHarness"},
        "flowgraph.commands": {"echo": "echoplugin:register"},
    }
    with installed_package(tmp_path, "echoplugin", {"echoplugin.py": PLUGIN}, entry_points):
        import echoplugin

        assert main(["run", "graphs/hello.yaml", "--echo"]) == 0
        assert main(["hello", "world"]) == 0
        assert main(["validate", "graphs/hello.yaml", "--scenario", "Echo"]) == 0
        calls = list(echoplugin.CALLS)
    assert calls == [("run", 10), ("hello", "world")]


def test_without_the_harness_its_option_is_unknown(tmp_path, capsys):
    try:
        main(["run", "graphs/hello.yaml", "--echo"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("argparse should refuse --echo")
    assert "unrecognized arguments: --echo" in capsys.readouterr().err


def test_a_broken_plugin_warns_and_the_rest_of_the_cli_works(tmp_path, capsys):
    with installed_package(
        tmp_path,
        "brokenplugin",
        {"brokenplugin.py": "import not_a_module_anywhere\n"},
        {"flowgraph.harnesses": {"broken": "brokenplugin:Harness"}},
    ):
        assert main(["run", "graphs/hello.yaml", "--quiet"]) == 0
    assert "cannot load flowgraph.harnesses entry point 'broken'" in capsys.readouterr().err
