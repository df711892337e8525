"""WebApplications from a directory of manifests (a GitOps checkout).

Every `*.yaml`/`*.yml` file below the directory is read, with any number of documents each;
documents of other kinds are skipped, as a GitOps repository holds many kinds. A manifest
that is not valid is reported with its file and field, and the others are still returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from correlator.models.webapp import KIND, WebApplication
from correlator.progress import Steps, quiet

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManifestError:
    """Why one document could not be used: `path:document: field: message`."""

    path: Path
    document: int  # 1-based position in a multi-document file
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}" + (f" (document {self.document})" if self.document > 1 else "")
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class LoadedApp:
    app: WebApplication
    path: Path


@dataclass(frozen=True, slots=True)
class Manifests:
    apps: list[LoadedApp]
    errors: list[ManifestError]


def _manifest_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        if path.suffix in MANIFEST_SUFFIXES and path.is_file() and ".git" not in path.parts:
            yield path


def _field(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def parse_document(
    document: Any, *, path: Path, index: int
) -> tuple[WebApplication | None, list[ManifestError]]:
    """A WebApplication, nothing (another kind), or the errors that say what is wrong."""
    if document is None:
        return None, []
    if not isinstance(document, dict):
        kind = type(document).__name__
        return None, [ManifestError(path, index, "(document)", f"expected a mapping, got {kind}")]
    if document.get("kind") != KIND:
        return None, []
    try:
        return WebApplication.model_validate(document), []
    except ValidationError as exc:
        errors = [
            ManifestError(path, index, _field(error["loc"]), error["msg"])
            for error in exc.errors(include_url=False, include_input=False)
        ]
        return None, errors


def load_manifests(directory: Path, *, steps: Steps = quiet) -> Manifests:
    """Every WebApplication below `directory`, and every error found on the way (`steps`
    reports each file read)."""
    apps: list[LoadedApp] = []
    errors: list[ManifestError] = []
    if not directory.is_dir():
        return Manifests([], [ManifestError(directory, 1, "(directory)", "is not a directory")])
    seen: dict[str, Path] = {}
    paths = list(_manifest_files(directory))
    for path in steps(paths, "reading WebApplication manifests", total=len(paths)):
        for index, document, error in _documents(path):
            if error is not None:
                errors.append(error)
                continue
            app, problems = parse_document(document, path=path, index=index)
            errors.extend(problems)
            if app is None:
                continue
            if app.key in seen:
                errors.append(
                    ManifestError(
                        path,
                        index,
                        "metadata.name",
                        f"{app.key} is also defined in {seen[app.key]}",
                    )
                )
                continue
            seen[app.key] = path
            apps.append(LoadedApp(app, path))
    return Manifests(apps, errors)


def _documents(path: Path) -> Iterator[tuple[int, Any, ManifestError | None]]:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            yield (
                1,
                None,
                ManifestError(path, 1, "(file)", f"larger than {MAX_MANIFEST_BYTES} bytes"),
            )
            return
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        yield 1, None, ManifestError(path, 1, "(file)", "is not UTF-8 text")
        return
    except OSError as exc:
        yield 1, None, ManifestError(path, 1, "(file)", f"cannot be read: {exc.strerror}")
        return
    index = 0
    try:
        for index, document in enumerate(yaml.safe_load_all(text), start=1):
            yield index, document, None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        yield index + 1, None, ManifestError(path, index + 1, "(yaml)", f"{line}{problem}")
