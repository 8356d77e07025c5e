"""Regenerate ``hf_tiny_reference.safetensors``: a tiny wav2vec2 built and run by Hugging Face transformers.

Not run by the tests (transformers is not a talkgen dependency). It records an independent reference:
weights in an older Hugging Face file layout (``wav2vec2.`` prefix, ``weight_g``/``weight_v`` weight
norm, pre-training ``quantizer.*`` keys) and the hidden states transformers computes for a fixed
waveform, both at the native 50 Hz and with the conv features interpolated to 25 and 30 fps before the
transformer (the official InfiniteTalk order). Usage, with transformers importable:

    python tests/audio/data/make_hf_reference.py
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Wav2Vec2Config, Wav2Vec2Model

OUT = Path(__file__).with_name("hf_tiny_reference.safetensors")


def main() -> None:
    torch.manual_seed(1234)
    config = Wav2Vec2Config(
        conv_dim=[32] * 7, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        conv_bias=False, do_stable_layer_norm=False,
    )
    model = Wav2Vec2Model(config).eval()
    with torch.no_grad():  # move every parameter off its init value so norms and biases matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    t = torch.arange(20800) / 16000
    wave = (0.4 * torch.sin(2 * torch.pi * (150 + 60 * torch.sin(2 * torch.pi * 2 * t)) * t)
            * (0.5 + 0.5 * torch.sin(2 * torch.pi * 4 * t)) + 0.02 * torch.randn(t.shape))[None]

    tensors: dict[str, torch.Tensor] = {"input.waveform": wave[0].clone()}
    with torch.no_grad():
        out = model(wave, output_hidden_states=True)
        tensors["expected.native"] = torch.stack(out.hidden_states[1:], 2)[0].clone()
        extract = model.feature_extractor.forward
        for fps, frames in ((25, 32), (30, 39)):  # round(1.3 s * fps)
            model.feature_extractor.forward = lambda x, n=frames: F.interpolate(
                extract(x), size=n, mode="linear", align_corners=True)
            out = model(wave, output_hidden_states=True)
            tensors[f"expected.fps{fps}"] = torch.stack(out.hidden_states[1:], 2)[0].clone()
        model.feature_extractor.forward = extract

    pos = "encoder.pos_conv_embed.conv."
    for key, value in model.state_dict().items():
        key = key.replace(pos + "parametrizations.weight.original0", pos + "weight_g")
        key = key.replace(pos + "parametrizations.weight.original1", pos + "weight_v")
        tensors["wav2vec2." + key] = value.clone()
    tensors["quantizer.codevectors"] = torch.randn(1, 8, 16)  # a pre-training head the loader must ignore
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
