"""The run-directory schema: what the writer stamps, the reader accepts, refuses and upgrades."""

import json

import pytest

from nas._schemas import (
    FORMAT_VERSION,
    ModelEntry,
    ObjectiveEntry,
    ParetoFile,
    RunFileError,
    SustainabilityFile,
    TimingsFile,
)


def _pareto() -> ParetoFile:
    return ParetoFile(
        objectives=[ObjectiveEntry(name="error", unit="%"), ObjectiveEntry(name="latency_ms", unit="ms")],
        hypervolume=1.5,
        reference={"error": 100.0, "latency_ms": 0.2},
        models=[ModelEntry(id=3, arch={"width": 1.0}, metrics={"error": 5.0, "latency_ms": 0.1}, onnx="models/3.onnx")],
    )


def test_a_written_file_reads_back_equal_and_carries_the_current_version():
    text = _pareto().to_json()
    assert json.loads(text)["format_version"] == FORMAT_VERSION
    back = ParetoFile.read_text(text)
    assert back.models[0].metrics == {"error": 5.0, "latency_ms": 0.1}
    assert back.format_version == FORMAT_VERSION


def test_unknown_keys_are_kept_for_newer_fields():
    data = json.loads(_pareto().to_json())
    data["models"][0]["class_names"] = ["a", "b"]
    back = ParetoFile.read_text(json.dumps(data))
    assert back.model_dump()["models"][0]["class_names"] == ["a", "b"]


def test_a_file_from_a_newer_hwnas_is_refused_with_what_to_do():
    data = json.loads(_pareto().to_json()) | {"format_version": FORMAT_VERSION + 1}
    with pytest.raises(RunFileError, match="newer than this hwnas reads.*upgrade"):
        ParetoFile.read_text(json.dumps(data), name="pareto.json")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "does not hold a JSON object"),
        ('{"objectives": []}', "models"),
        ('{"objectives": [{"name": "error", "direction": "up"}], "models": []}', "objectives.0.direction"),
    ],
)
def test_a_damaged_pareto_file_gets_one_line_naming_the_problem(text, message):
    with pytest.raises(RunFileError, match=message) as e:
        ParetoFile.read_text(text, name="pareto.json")
    assert "\n" not in str(e.value)


def test_unversioned_timings_read_as_version_zero():
    old = TimingsFile.read_text(json.dumps({"data": 1.5, "search": 60.0}))
    assert old.format_version == 0 and old.seconds == {"data": 1.5, "search": 60.0}
    new = TimingsFile.read_text(TimingsFile(seconds={"export": 2.0}).to_json())
    assert new.format_version == FORMAT_VERSION and new.seconds == {"export": 2.0}


def test_the_tracker_summary_fits_the_sustainability_schema(tmp_path):
    from nas.sustainability import SearchTracker

    tracker = SearchTracker(tmp_path, project="p", enabled=False)
    tracker.write()
    read = SustainabilityFile.read_text((tmp_path / "sustainability.json").read_text())
    assert read.format_version == FORMAT_VERSION
    assert read.tracker["enabled"] is False
