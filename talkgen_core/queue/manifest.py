"""Reading a batch manifest (CSV or JSON lines) into validated :class:`Job` records.

A manifest lists one dubbing job per row (CSV) or per line (JSON lines):

- ``video`` or ``image``: the source, exactly one per job.
- ``audio``, ``audio2``, ``audio3``, ...: the driving audio, one file per speaker, in speaker order
  (``audio1`` is accepted as a synonym of ``audio``). In JSON lines ``audio`` may also be a list.
- ``output``: the output name (a plain name such as ``clip01``, or a relative path such as
  ``dubs/clip01``; a media suffix like ``.mp4`` is dropped). Defaults to the source file's stem.
- any other column is a per-job setting (``seed``, ``steps``, ``audio_cfg``, ``fps``, ...). CSV cells
  are typed: ``true``/``false`` become booleans, integers and finite decimals become numbers, anything
  else stays text, and an empty cell means "not set". JSON values keep their JSON type.
- ``text_encoder`` / ``clip_vision`` / ``tokenizer`` (settings that are files: umT5-XXL and CLIP ViT-H vision
  for ``prompt`` / ``negative_prompt`` and the image tokens, in-process runs) are paths like the sources.

Relative paths are relative to the manifest's folder. Everything is checked before any job runs:
problems that concern a single job (a missing file, a duplicate output name) are kept on that job so it
can be reported and marked failed while the others run; problems with the manifest as a whole (missing
file, not UTF-8, no source or audio column) raise :class:`ManifestError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

from talkgen_core.files.guard import relative_problem
from talkgen_core.queue.fingerprint import Fingerprint

Scalar = Union[bool, int, float, str]

SOURCE_KINDS = ("video", "image")
OUTPUT_KEY = "output"
JOB_DIR_KEY = "job_dir"  # a setting, checked here: job folders stay inside the output folder
FILE_SETTINGS = ("text_encoder", "tokenizer", "clip_vision")  # settings that are files, resolved like the sources
_AUDIO_KEY = re.compile(r"^audio(\d*)$")
_MEDIA_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".png", ".webp", ".jpg")
_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (missing, unreadable, or lacking a required column)."""


@dataclass(frozen=True)
class Job:
    """One validated manifest entry. ``problems`` non-empty means the job cannot run."""

    number: int  # 1-based position among the manifest's jobs
    row: int  # line number in the manifest file (a CSV header is row 1)
    source_kind: str  # "video", "image", or "" when the row gives no source
    source: Path | None
    audio: tuple[Path, ...]
    output: str
    settings: dict[str, Scalar] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()  # source then audio, by content; set before the journal is read

    @property
    def label(self) -> str:
        return f"job {self.number} (row {self.row})"

    @property
    def runnable(self) -> bool:
        return not self.problems

    @property
    def key(self) -> str:
        """Stable identity for the journal: a hash of the inputs' contents, output name and settings.

        Files are known by their sha256 once fingerprinted (every runnable job is, before the journal is
        consulted), so a file replaced under the same name makes a new job; a job whose files could not
        be read has no content to hash and is known by its paths.
        """
        if self.fingerprints:
            files: dict[str, Any] = {"inputs": [f.sha256 for f in self.fingerprints]}
        else:
            files = {"source": str(self.source) if self.source else "", "audio": [str(p) for p in self.audio]}
        identity = {"source_kind": self.source_kind, **files, "output": self.output, "settings": self.settings}
        text = json.dumps(identity, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]

    def problem_text(self) -> str:
        """All problems in one line, prefixed with the job label."""
        return f"{self.label}: " + "; ".join(self.problems)


def parse_cell(text: str) -> Scalar:
    """Type one CSV cell: booleans, integers, finite decimals, else the stripped text."""
    value = text.strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


@dataclass(frozen=True)
class _RawRow:
    line: int  # line number in the manifest file
    entry: dict[str, Any]  # column/key -> non-empty value
    problems: tuple[str, ...] = ()  # found while splitting the row (e.g. too many cells)


def read_manifest(path: str | Path) -> list[Job]:
    """Read and validate a manifest. Raises :class:`ManifestError` for manifest-level problems."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    if path.is_dir():
        raise ManifestError(f"manifest is a folder, not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except OSError as exc:
        raise ManifestError(f"manifest {path} could not be read: {exc.strerror or exc}") from exc
    is_json_lines = _looks_like_json_lines(path, text)
    columns, rows = _json_lines_rows(path, text) if is_json_lines else _csv_rows(path, text)
    if not rows:
        raise ManifestError(f"manifest {path} lists no jobs; add one row per job below the header")
    keys = {column.lower() for column in columns}
    if not keys & set(SOURCE_KINDS):
        raise ManifestError(
            f"manifest {path} has no source column: add a `video` or `image` column "
            f"(columns found: {', '.join(sorted(keys)) or 'none'})"
        )
    if not any(_AUDIO_KEY.match(key) for key in keys):
        raise ManifestError(
            f"manifest {path} has no audio column: add an `audio` column (and `audio2`, ... for more speakers)"
        )
    base = path.parent
    cells_are_text = not is_json_lines
    jobs = [_build_job(number, row, base, cells_are_text) for number, row in enumerate(rows, start=1)]
    return _flag_duplicate_outputs(jobs)


def _looks_like_json_lines(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return False
    if suffix in _JSON_LINES_SUFFIXES:
        return True
    return text.lstrip().startswith("{")


def _csv_rows(path: Path, text: str) -> tuple[list[str], list[_RawRow]]:
    """The header's column names and the non-blank rows."""
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _guess_delimiter(header_line)
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    rows: list[_RawRow] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            _check_header(path, header)
            continue
        problems: tuple[str, ...] = ()
        if len(cells) > len(header):
            problems = (f"row has {len(cells)} cells but the header has {len(header)} columns",)
        entry = {name: cell.strip() for name, cell in zip(header, cells) if cell.strip()}
        rows.append(_RawRow(reader.line_num, entry, problems))
    return header or [], rows


def _guess_delimiter(header_line: str) -> str:
    if "," in header_line:
        return ","
    for candidate in (";", "\t"):
        if candidate in header_line:
            return candidate
    return ","


def _check_header(path: Path, header: list[str]) -> None:
    for index, name in enumerate(header, start=1):
        if not name:
            raise ManifestError(f"manifest {path}: header column {index} has no name; name it or delete it")
    seen: set[str] = set()
    for name in header:
        if name.lower() in seen:
            raise ManifestError(f"manifest {path}: column {name!r} appears twice in the header")
        seen.add(name.lower())


def _json_lines_rows(path: Path, text: str) -> tuple[list[str], list[_RawRow]]:
    """Every key used by any line, and one row per non-blank line."""
    if text.lstrip().startswith("["):
        raise ManifestError(
            f"manifest {path} is one JSON array; write JSON lines instead (one object per line)"
        )
    rows: list[_RawRow] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"manifest {path} line {line_number}: not valid JSON ({exc.msg}); fix that line"
            ) from exc
        if not isinstance(entry, dict):
            raise ManifestError(
                f"manifest {path} line {line_number}: expected a JSON object like "
                f'{{"video": "a.mp4", "audio": "a.wav"}}, got {type(entry).__name__}'
            )
        rows.append(_RawRow(line_number, entry))
    return sorted({key for row in rows for key in row.entry}), rows


def _build_job(number: int, row: _RawRow, base: Path, cells_are_text: bool) -> Job:
    """``cells_are_text``: CSV cells are typed with :func:`parse_cell`; JSON values keep their JSON type."""
    entry = row.entry
    problems: list[str] = list(row.problems)
    by_lower = {key.lower(): key for key in entry}

    source_kind, source = "", None
    given = [kind for kind in SOURCE_KINDS if _present(entry.get(by_lower.get(kind, "")))]
    if len(given) > 1:
        problems.append("both `video` and `image` are given; a job takes exactly one source")
    elif not given:
        problems.append("no source: fill the `video` or `image` column")
    else:
        source_kind = given[0]
        source, problem = _file_path(entry[by_lower[source_kind]], source_kind, base)
        if problem:
            problems.append(problem)

    audio, audio_problems = _audio_paths(entry, base)
    problems += audio_problems

    settings: dict[str, Scalar] = {}
    for key, value in entry.items():
        lowered = key.lower()
        if lowered in SOURCE_KINDS or lowered == OUTPUT_KEY or _AUDIO_KEY.match(lowered) or not _present(value):
            continue
        if isinstance(value, str):
            settings[key] = parse_cell(value) if cells_are_text else value
        elif isinstance(value, (bool, int, float)):
            settings[key] = value
        else:
            problems.append(f"setting {key!r} must be a number, true/false or text, not {type(value).__name__}")

    for key in FILE_SETTINGS:  # encoder files: relative to the manifest's folder, checked now (a tokenizer may be
        if key in settings:    # the folder holding spiece.model)
            path, problem = _file_path(settings[key], key, base)
            if problem and not (key == "tokenizer" and path is not None and path.is_dir()):
                problems.append(problem)
            if path is not None:
                settings[key] = str(path)
    job_dir_problem = relative_problem(settings[JOB_DIR_KEY]) if JOB_DIR_KEY in settings else None
    if job_dir_problem:
        problems.append(f"`{JOB_DIR_KEY}` {settings[JOB_DIR_KEY]!r} {job_dir_problem}: it is a folder inside the "
                        "output folder, e.g. jobs")
    output, problem = _output_name(entry.get(by_lower.get(OUTPUT_KEY, "")), source)
    if problem:
        problems.append(problem)
    return Job(number, row.line, source_kind, source, tuple(audio), output, settings, tuple(problems))


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple)):
        return bool(value)
    return True


def _file_path(value: Any, column: str, base: Path) -> tuple[Path | None, str | None]:
    if not isinstance(value, str):
        return None, f"`{column}` must be a file path, got {type(value).__name__}"
    path = Path(os.path.normpath(base / Path(value.strip()).expanduser()))
    if not path.is_absolute():
        path = Path(os.path.abspath(path))
    if path.is_dir():
        return path, f"{column} path is a folder, not a file: {path}"
    if not path.exists():
        return path, f"{column} file not found: {path}"
    return path, None


def _audio_paths(entry: dict[str, Any], base: Path) -> tuple[list[Path], list[str]]:
    problems: list[str] = []
    by_speaker: dict[int, tuple[str, Any]] = {}
    for key, value in entry.items():
        match = _AUDIO_KEY.match(key.lower())
        if not match or not _present(value):
            continue
        if isinstance(value, list):  # JSON lines: "audio": ["a.wav", "b.wav"]
            if key.lower() != "audio":
                problems.append(f"`{key}` must be one file path; only `audio` may hold a list")
                continue
            for offset, item in enumerate(value):
                by_speaker[1 + offset] = ("audio", item)
            continue
        speaker = int(match.group(1) or 1)
        if speaker in by_speaker:
            problems.append(f"speaker {speaker} audio is given twice (`{by_speaker[speaker][0]}` and `{key}`)")
            continue
        by_speaker[speaker] = (key, value)
    if not by_speaker:
        return [], problems + ["no audio: fill the `audio` column"]
    expected = list(range(1, max(by_speaker) + 1))
    gaps = [speaker for speaker in expected if speaker not in by_speaker]
    if gaps:
        names = ", ".join("audio" if s == 1 else f"audio{s}" for s in gaps)
        problems.append(f"speaker audio is missing for {names}; fill speakers in order (audio, audio2, ...)")
    paths: list[Path] = []
    for speaker in sorted(by_speaker):
        column, value = by_speaker[speaker]
        path, problem = _file_path(value, column, base)
        if problem:
            problems.append(problem)
        if path is not None:
            paths.append(path)
    return paths, problems


def _output_name(value: Any, source: Path | None) -> tuple[str, str | None]:
    if not _present(value):
        return (source.stem if source else ""), None
    if not isinstance(value, str):
        return str(value), f"`output` must be a name, got {type(value).__name__}"
    name = value.strip().replace("\\", "/")
    stem, suffix = os.path.splitext(name)
    if suffix.lower() in _MEDIA_SUFFIXES:
        name = stem
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts) or ":" in name:
        return name, (
            f"output name {value!r} is not usable: give a plain name like clip01 or a relative path "
            "like dubs/clip01 (no '..', no absolute path, no drive letter)"
        )
    return name, None


def _flag_duplicate_outputs(jobs: list[Job]) -> list[Job]:
    first_user: dict[str, Job] = {}
    checked: list[Job] = []
    for job in jobs:
        owner = first_user.get(job.output.lower()) if job.output else None
        if owner is not None:
            problem = f"output name {job.output!r} is also used by {owner.label}; give each job its own output"
            job = replace(job, problems=job.problems + (problem,))
        elif job.output:
            first_user[job.output.lower()] = job
        checked.append(job)
    return checked
