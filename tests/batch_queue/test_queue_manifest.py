from __future__ import annotations

import json
from pathlib import Path

import pytest

from talkgen_core.queue.manifest import ManifestError, parse_cell, read_manifest


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cells_are_typed() -> None:
    assert parse_cell("42") == 42 and isinstance(parse_cell("42"), int)
    assert parse_cell(" 4.5 ") == 4.5
    assert parse_cell("-3") == -3
    assert parse_cell("TRUE") is True and parse_cell("false") is False
    assert parse_cell("euler") == "euler"
    assert parse_cell("nan") == "nan"  # non-finite numbers stay text
    assert parse_cell("1e-3") == pytest.approx(0.001)


def test_csv_jobs_with_settings_and_speakers(media: Path) -> None:
    manifest = write(
        media / "jobs.csv",
        "video,audio,audio2,output,seed,audio_cfg,colour_fix,sampler\n"
        "a.mp4,a.wav,,first,42,4.5,true,euler\n"
        "\n"
        "b.mp4,a.wav,b.wav,dubs/second.mp4,7,,false,\n",
    )
    first, second = read_manifest(manifest)
    assert first.runnable and second.runnable
    assert (first.number, first.row, second.number, second.row) == (1, 2, 2, 4)
    assert first.source == media / "a.mp4" and first.source_kind == "video"
    assert first.audio == (media / "a.wav",)
    assert first.settings == {"seed": 42, "audio_cfg": 4.5, "colour_fix": True, "sampler": "euler"}
    assert second.audio == (media / "a.wav", media / "b.wav")
    assert second.output == "dubs/second"  # media suffix dropped, subfolder kept
    assert second.settings == {"seed": 7, "colour_fix": False}  # empty cells are "not set"


def test_missing_files_are_reported_per_job_with_row_numbers(media: Path) -> None:
    manifest = write(
        media / "jobs.csv",
        "image,audio,output\nface.png,a.wav,one\nface.png,b.wav,two\nface.png,gone.wav,three\nnope.png,c.wav,four\n",
    )
    jobs = read_manifest(manifest)
    assert [job.runnable for job in jobs] == [True, True, False, False]
    assert jobs[2].problem_text() == f"job 3 (row 4): audio file not found: {media / 'gone.wav'}"
    assert jobs[3].problem_text() == f"job 4 (row 5): image file not found: {media / 'nope.png'}"


def test_json_lines_keep_json_types_and_accept_audio_lists(media: Path) -> None:
    lines = [
        {"video": "a.mp4", "audio": ["a.wav", "b.wav"], "output": "duo", "seed": "42", "steps": 8},
        {"image": str(media / "face.png"), "audio": "c.wav", "fps": 25.0, "flag": True},
    ]
    manifest = write(media / "jobs.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    duo, face = read_manifest(manifest)
    assert duo.audio == (media / "a.wav", media / "b.wav")
    assert duo.settings == {"seed": "42", "steps": 8}  # a JSON string stays text
    assert face.source_kind == "image" and face.output == "face"  # output defaults to the source stem
    assert face.settings == {"fps": 25.0, "flag": True}
    assert face.row == 2


def test_row_problems_do_not_stop_other_rows(media: Path) -> None:
    manifest = write(
        media / "jobs.csv",
        "video,image,audio,audio3,output\n"
        "a.mp4,face.png,a.wav,,both\n"
        ",,a.wav,,nosource\n"
        "a.mp4,,,,noaudio\n"
        "b.mp4,,a.wav,c.wav,gap\n"
        "c.mp4,,a.wav,,../escape\n"
        "d.mp4,,a.wav,,both\n"
        "d.mp4,,b.wav,,fine\n",
    )
    jobs = read_manifest(manifest)
    reasons = [" ".join(job.problems) for job in jobs]
    assert "exactly one source" in reasons[0]
    assert "no source" in reasons[1]
    assert "no audio" in reasons[2]
    assert "audio2" in reasons[3] and "in order" in reasons[3]
    assert "not usable" in reasons[4]
    assert "also used by job 1 (row 2)" in reasons[5]
    assert jobs[6].runnable


def test_manifest_level_problems_raise(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.csv")
    with pytest.raises(ManifestError, match="no source column"):
        read_manifest(write(tmp_path / "a.csv", "audio,output\nx.wav,y\n"))
    with pytest.raises(ManifestError, match="no audio column"):
        read_manifest(write(tmp_path / "b.csv", "video,output\nx.mp4,y\n"))
    with pytest.raises(ManifestError, match="no jobs"):
        read_manifest(write(tmp_path / "c.csv", "video,audio\n"))
    with pytest.raises(ManifestError, match="line 2: not valid JSON"):
        read_manifest(write(tmp_path / "d.jsonl", '{"video": "a.mp4", "audio": "a.wav"}\n{"video": \n'))
    with pytest.raises(ManifestError, match="not UTF-8"):
        (tmp_path / "e.csv").write_bytes(b"video,audio\n\xff\xfe.mp4,a.wav\n")
        read_manifest(tmp_path / "e.csv")
    with pytest.raises(ManifestError, match="appears twice"):
        read_manifest(write(tmp_path / "f.csv", "video,audio,Video\na,b,c\n"))


def test_header_case_and_extra_cells(media: Path) -> None:
    good, extra = read_manifest(write(media / "jobs.csv", "Video,Audio,Output\na.mp4,a.wav,x\nb.mp4,b.wav,y,surplus\n"))
    assert good.runnable and good.output == "x" and good.audio == (media / "a.wav",)
    assert extra.problems == ("row has 4 cells but the header has 3 columns",)


def test_semicolon_csv_and_format_sniffing(media: Path) -> None:
    (job,) = read_manifest(write(media / "jobs.txt", "video;audio;seed\na.mp4;a.wav;3\n"))
    assert job.runnable and job.settings == {"seed": 3}
    (job,) = read_manifest(write(media / "jobs.txt", '{"video": "a.mp4", "audio": "a.wav"}\n'))
    assert job.runnable


def test_key_identifies_source_audio_output_and_settings(media: Path) -> None:
    manifest = write(media / "jobs.csv", "video,audio,output,seed\na.mp4,a.wav,x,1\na.mp4,a.wav,y,1\n")
    first, second = read_manifest(manifest)
    assert first.key != second.key
    assert read_manifest(manifest)[0].key == first.key  # stable across reads
    write(manifest, "video,audio,output,seed\na.mp4,a.wav,x,2\n")
    assert read_manifest(manifest)[0].key != first.key
