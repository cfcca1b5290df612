"""The helpers the localstack tier stands on: reading docker-compose.yml as compose does, mapping
its services onto loopback, and finding interpreters for cached venvs. No network, no processes
beyond the interpreter probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import compose, venvs
from tests.support.localstack import COMPOSE_FILE


def test_interpolation_follows_compose() -> None:
    # GIVEN one variable set, one set empty, one unset
    variables = {"SET": "value", "EMPTY": ""}
    # WHEN compose's forms are interpolated THEN each gives what compose gives
    assert compose.interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}", variables) == "value/d/d"
    assert compose.interpolate("${EMPTY-d}/${UNSET-d}", variables) == "/d"
    assert compose.interpolate("${SET:+alt}/${EMPTY:+alt}/$SET", variables) == "alt//value"
    assert compose.interpolate("$$HOME", variables) == "$HOME"
    with pytest.raises(ValueError, match="UNSET"):
        compose.interpolate("${UNSET:?set it}", variables)


def test_durations_are_compose_durations() -> None:
    assert compose.duration_s("1m30s", 0) == 90
    assert compose.duration_s("500ms", 0) == 0.5
    assert compose.duration_s(None, 7) == 7


def test_services_come_from_the_file_with_their_images_health_checks() -> None:
    # GIVEN the project's compose file, read with no variables set
    services = compose.load(COMPOSE_FILE, variables={})

    # THEN anchors are merged and defaults interpolated
    assert services["runtime"].environment["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert services["ingest"].environment["INGEST_API_KEYS"] == "local-demo-key-0123456789"
    assert services["producer"].environment["FINNHUB_API_KEY"] == ""
    # AND the dependency conditions are compose's
    assert services["runtime"].depends_on == {
        "deploy": "service_completed_successfully",
        "model": "service_healthy",
    }
    # AND the health checks are the Dockerfiles' (compose declares only LocalStack's)
    runtime_check = services["runtime"].healthcheck
    assert runtime_check is not None
    assert runtime_check.test == ["test", "-s", "/tmp/tradestream-runtime.ready"]
    assert (runtime_check.interval_s, runtime_check.start_period_s) == (5, 60)
    producer_check = services["producer"].healthcheck
    assert producer_check is not None
    assert producer_check.test is None
    assert services["localstack"].healthcheck is not None
    assert services["ingest"].stop_grace_s == 30


def test_hostnames_map_to_loopback_ports_and_order_is_compose_order(tmp_path: Path) -> None:
    # GIVEN the services with LocalStack already running on some port
    run = compose.ComposeRun(
        compose.load(COMPOSE_FILE, variables={}),
        tmp_path,
        external={"localstack": "http://127.0.0.1:45666"},
    )
    model_url = run.url("model", 8080)

    # THEN URLs naming a service reach its loopback port
    runtime_env = run.run_environment("runtime")
    assert runtime_env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:45666"
    assert runtime_env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == model_url
    # AND a server listens on loopback at its mapped port
    argv = run.host_argv("model", run.services["model"].command)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert f"http://127.0.0.1:{argv[argv.index('--port') + 1]}" == model_url
    # AND /tmp is the service's own
    ready = run.host_argv("runtime", run.services["runtime"].command)[-1]
    assert ready == str(tmp_path / "runtime" / "tmp" / "tradestream-runtime.ready")
    # AND services start after what they depend on
    order = run.order()
    assert "localstack" not in order
    assert order.index("deploy") < order.index("runtime") < order.index("ingest")
    assert order.index("model") < order.index("runtime") < order.index("producer")


def test_no_interpreter_of_a_version_means_unavailable_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a PATH and a pyenv root holding no Python 2.6
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # WHEN a venv for it is asked for THEN it is unavailable, saying where it looked
    assert venvs.find_python("2.6") is None
    with pytest.raises(venvs.VenvUnavailableError, match=r"python2\.6"):
        venvs.cached_venv("old", "2.6", ["nothing"])
    assert not (tmp_path / "cache").exists()
