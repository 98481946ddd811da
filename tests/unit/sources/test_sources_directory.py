"""The mesh directory: YAML discovery and last-good semantics across reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.errors import Severity
from plait.sources import directory
from plait.sources.directory import ConfigView, DirectorySource, yaml_files


def service(name: str, port: int = 80) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {port}}}]
"""


def names(view: ConfigView) -> list[str]:
    return [item.resource.metadata.name for item in view.resources]


def port_of(view: ConfigView, name: str) -> int:
    (item,) = [i for i in view.resources if i.resource.metadata.name == name]
    return item.resource.spec.ports[0].port  # type: ignore[union-attr]


def errors(view: ConfigView) -> list[str]:
    return [str(m) for m in view.messages if m.severity is Severity.ERROR]


def test_yaml_files_are_sorted_and_skip_hidden_files_and_directories(tmp_path: Path) -> None:
    for rel in [
        "b.yaml",
        "a.yml",
        "sub/c.yaml",
        "sub/.hidden.yaml",
        ".plait/state.yaml",
        "sub/.git/x.yaml",
        "notes.txt",
        "README.md",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "dir.yaml").mkdir()
    got = [p.relative_to(tmp_path).as_posix() for p in yaml_files(tmp_path)]
    assert got == ["a.yml", "b.yaml", "sub/c.yaml"]


def test_a_single_file_root_is_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(service("reviews"))
    assert names(DirectorySource(path).load()) == ["reviews"]


def test_loads_every_file_in_order_with_sources(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(service("ratings") + "---\n" + service("reviews"))
    (tmp_path / "a.yaml").write_text(service("web"))
    (tmp_path / ".plait").mkdir()
    (tmp_path / ".plait" / "x.yaml").write_text(service("hidden"))
    view = DirectorySource(tmp_path).load()
    assert names(view) == ["web", "ratings", "reviews"]
    assert [(Path(i.source.file).name, i.source.document) for i in view.resources] == [
        ("a.yaml", 0),
        ("b.yaml", 0),
        ("b.yaml", 1),
    ]
    assert view.messages == () and view.kept == ()


def test_a_file_that_turns_bad_keeps_its_last_good_resources(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    source = DirectorySource(tmp_path)
    path.write_text(service("reviews") + "---\n" + service("ratings"))
    assert names(source.load()) == ["reviews", "ratings"]

    # ratings becomes invalid YAML; reviews changes and still loads
    path.write_text(service("reviews", 9080) + "---\nkind: Service\n  bad: [indent\n")
    view = source.load()
    assert sorted(names(view)) == ["ratings", "reviews"]
    assert port_of(view, "reviews") == 9080  # the good document's new version is used
    assert port_of(view, "ratings") == 80  # the broken one's last good version
    assert view.kept == (f"Service/default/ratings ({path})",)
    (error,) = errors(view)
    assert "services.yaml[1]" in error and "YAML syntax error" in error

    # still broken on the next reload: still kept
    view = source.load()
    assert view.kept == (f"Service/default/ratings ({path})",)

    # fixed without ratings: it is gone, nothing is kept
    path.write_text(service("reviews", 9080))
    view = source.load()
    assert names(view) == ["reviews"]
    assert view.kept == () and errors(view) == []


def test_an_invalid_document_keeps_the_last_good_version_of_that_resource(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    source = DirectorySource(tmp_path)
    path.write_text(service("reviews", 8080))
    source.load()
    path.write_text(service("reviews", 8080).replace("port: 8080", "port: 99999"))
    view = source.load()
    assert port_of(view, "reviews") == 8080
    assert view.kept == (f"Service/default/reviews ({path})",)
    assert any("spec.ports[0].port" in e for e in errors(view))


def test_a_bad_file_without_history_contributes_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    (tmp_path / "good.yaml").write_text(service("reviews"))
    view = DirectorySource(tmp_path).load()
    assert names(view) == ["reviews"]
    assert view.kept == ()
    assert len(errors(view)) == 1


def test_an_unreadable_file_keeps_its_last_good_resources(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    source = DirectorySource(tmp_path)
    path.write_text(service("reviews"))
    source.load()
    path.write_bytes(b"\xff\xfe not utf-8")
    view = source.load()
    assert names(view) == ["reviews"]
    assert view.kept == (f"Service/default/reviews ({path})",)
    (error,) = errors(view)
    assert "cannot read" in error


def test_a_deleted_file_removes_its_resources(tmp_path: Path) -> None:
    source = DirectorySource(tmp_path)
    (tmp_path / "a.yaml").write_text(service("reviews"))
    (tmp_path / "b.yaml").write_text(service("ratings"))
    assert names(source.load()) == ["reviews", "ratings"]
    (tmp_path / "b.yaml").unlink()
    assert names(source.load()) == ["reviews"]
    # it does not come back as "last good" when a file of that name reappears broken
    (tmp_path / "b.yaml").write_text("kind: [\n")
    view = source.load()
    assert names(view) == ["reviews"] and view.kept == ()


def test_a_resource_removed_from_a_valid_file_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    source = DirectorySource(tmp_path)
    path.write_text(service("reviews") + "---\n" + service("ratings"))
    source.load()
    path.write_text(service("reviews"))
    assert names(source.load()) == ["reviews"]


def test_duplicates_across_files_first_file_wins_and_the_second_is_an_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(service("reviews", 8080))
    (tmp_path / "b.yaml").write_text(service("ratings") + "---\n" + service("reviews", 9080))
    view = DirectorySource(tmp_path).load()
    assert names(view) == ["reviews", "ratings"]
    assert port_of(view, "reviews") == 8080
    (message,) = [m for m in view.messages if m.severity is Severity.ERROR]
    assert (Path(message.file).name, message.document, message.path) == (
        "b.yaml",
        1,
        "metadata.name",
    )
    assert "Service default/reviews is already defined in" in message.message
    assert str(tmp_path / "a.yaml") in message.message


def test_warnings_do_not_trigger_last_good(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    source = DirectorySource(tmp_path)
    path.write_text(service("reviews") + "---\n" + service("ratings"))
    source.load()
    # a valid file whose only message is a warning: ratings was removed on purpose
    path.write_text(service("reviews").replace("spec:", "spec:\n  sessionAfinity: None"))
    view = source.load()
    assert names(view) == ["reviews"]
    assert view.kept == ()
    assert [m.severity for m in view.messages] == [Severity.WARNING]


def test_only_changed_files_are_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    real = directory.load_text

    def counting(text: str, file: str):  # type: ignore[no-untyped-def]
        parsed.append(Path(file).name)
        return real(text, file)

    monkeypatch.setattr(directory, "load_text", counting)
    (tmp_path / "a.yaml").write_text(service("a"))
    (tmp_path / "b.yaml").write_text(service("b"))
    source = DirectorySource(tmp_path)
    source.load()
    assert sorted(parsed) == ["a.yaml", "b.yaml"]
    parsed.clear()
    (tmp_path / "b.yaml").write_text(service("b", port=8080))
    view = source.load()
    assert parsed == ["b.yaml"]
    assert port_of(view, "b") == 8080
    assert names(view) == ["a", "b"]
