"""A command whose extra is not installed names the extra to install, not a traceback."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tradestream.cli.main import ExtrasGroup


def group_failing_with(command: str, missing: str) -> click.Group:
    @click.group(cls=ExtrasGroup)
    def main() -> None:
        pass

    @main.command(command)
    def failing() -> None:
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    return main


@pytest.mark.parametrize(
    ("command", "extra"), [("ingest", "ingest"), ("model", "ml"), ("demo", "local")]
)
def test_a_missing_third_party_module_names_the_commands_extra(command: str, extra: str) -> None:
    # GIVEN a command whose third-party import is missing
    main = group_failing_with(command, "somelib.sub")
    # WHEN it runs
    result = CliRunner().invoke(main, [command])
    # THEN it exits 1 with the extra to install, and no traceback
    assert result.exit_code == 1
    assert f"pip install 'tradestream[{extra}]'" in result.output
    assert "somelib.sub is not installed" in result.output
    assert "Traceback" not in result.output


def test_a_missing_module_of_the_project_itself_is_not_blamed_on_an_extra() -> None:
    # GIVEN a command whose own package is missing (a broken install, not a missing extra)
    main = group_failing_with("demo", "producer.sources")
    # WHEN it runs
    result = CliRunner().invoke(main, ["demo"])
    # THEN the error propagates as it is
    assert isinstance(result.exception, ModuleNotFoundError)
    assert result.exception.name == "producer.sources"
