"""Peak memory of the new long-video strategies does not grow with the video (60 s vs 10 s of audio, fake models).

Run as the ``generate`` command runs (its malloc setting included: without it glibc's heap keeps some of the
freed 3.5 MB frame buffers and the sliding-window peak crept up by 11 % from 10 s to 60 s here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RUN = r"""
import json, resource, sys, torch
from sampling.streaming_fakes import FakeDiT, FakeVAE
from talkgen_core.commands.generate import keep_peak_memory_flat
from talkgen_core.sampling.guidance import GuidanceConfig
from talkgen_core.sampling.references import StillReference
from talkgen_core.sampling.strategies import get_strategy
from talkgen_core.sampling.streaming import StreamConditioning, StreamingSampler, StreamSettings
from talkgen_core.video.writer import Mp4Writer

seconds, strategy, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
keep_peak_memory_flat()  # as `generate` does: freed frame buffers go back to the OS at once
fps = 25
frames = round(seconds * fps)
plan = get_strategy(strategy)({}).plan(frames, 81, 9)
features = [torch.randn(frames, 4, 16)]
audio = 0.1 * torch.randn(int(seconds * 16000))
sampler = StreamingSampler(
    FakeDiT(), FakeVAE(), plan, fps, StillReference(torch.rand(3, 64, 64) * 2 - 1, (64, 64)),
    StreamConditioning(features, torch.zeros(1, 4, 8)),
    StreamSettings(steps=4, guidance=GuidanceConfig(1.0, 2.0), colour_strength=0.0, strategy=strategy),
)
writer = Mp4Writer(out, fps=fps, audio=audio, preset="ultrafast")
result = sampler.run(writer)
writer.close()
print(json.dumps({"frames": result.frames, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss(seconds: float, strategy: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    done = subprocess.run([sys.executable, "-c", RUN, str(seconds), strategy, str(out)], env=env,
                          capture_output=True, text=True, timeout=180, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("strategy", ["sliding-window", "memory-bank"])
def test_peak_memory_is_flat_in_video_length(tmp_path, strategy):
    short = peak_rss(10.0, strategy, tmp_path / "a.mp4")
    long = peak_rss(60.0, strategy, tmp_path / "b.mp4")
    assert short["frames"] == 250 and long["frames"] == 1500
    assert long["peak_kib"] <= 1.10 * short["peak_kib"], (short, long)
