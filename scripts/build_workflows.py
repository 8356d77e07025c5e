"""Write the shipped workflows: each graph once, as a UI-format workflow (``workflows/NAME.json``, the pack's
templates in ComfyUI's browser, with a thumbnail ``NAME.jpg``, a Note saying which model file goes into which
folder, and model metadata for the frontend's download buttons) and its API-format twin
(``workflows/api/NAME.json``, for /prompt and the batch queue; ComfyUI's template listing does not look into
sub-folders, so the twins never show up as templates).

    python scripts/build_workflows.py          # rewrite workflows/
    python scripts/build_workflows.py --check  # exit 1 when a shipped file differs from what this writes

The UI twin's widget values follow each node's INPUT_TYPES order, so it is derived from the node classes
(ours imported from ``nodes/``; the few native ComfyUI nodes used are described in NATIVE_NODES). Load nodes
name the pack's example inputs as the pack installs them into ComfyUI's input folder (``talkgen_*``), so
every workflow opens and the demo runs without copying files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
API_WORKFLOWS = WORKFLOWS / "api"
EXAMPLE_PREFIX = "talkgen_"  # nodes/example_inputs.py installs example_inputs/NAME as input/talkgen_NAME
DEMO = "talkgen-demo (embedded)"
DEMO_REFINER = "talkgen-demo refiner (embedded)"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_INPUTS = {"seed", "noise_seed"}  # the frontend adds a "control after generate" value after these

# native nodes: ordered widget names and the socket inputs / outputs (name, type) the UI lists
NATIVE_NODES: dict[str, dict] = {
    "LoadImage": {"widgets": ["image", "upload"], "inputs": [], "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]},
    "LoadAudio": {"widgets": ["audio", "upload"], "inputs": [], "outputs": [("AUDIO", "AUDIO")]},
    "LoadVideo": {"widgets": ["file", "upload"], "inputs": [], "outputs": [("VIDEO", "VIDEO")]},
    "VAELoader": {"widgets": ["vae_name"], "inputs": [], "outputs": [("VAE", "VAE")]},
    "UNETLoader": {"widgets": ["unet_name", "weight_dtype"], "inputs": [], "outputs": [("MODEL", "MODEL")]},
    "ModelPatchLoader": {"widgets": ["name"], "inputs": [], "outputs": [("MODEL_PATCH", "MODEL_PATCH")]},
    "CLIPLoader": {"widgets": ["clip_name", "type", "device"], "inputs": [], "outputs": [("CLIP", "CLIP")]},
    "CLIPTextEncode": {"widgets": ["text"], "inputs": [("clip", "CLIP")], "outputs": [("CONDITIONING", "CONDITIONING")]},
    "CLIPVisionLoader": {"widgets": ["clip_name"], "inputs": [], "outputs": [("CLIP_VISION", "CLIP_VISION")]},
    "CLIPVisionEncode": {"widgets": ["crop"], "inputs": [("clip_vision", "CLIP_VISION"), ("image", "IMAGE")],
                         "outputs": [("CLIP_VISION_OUTPUT", "CLIP_VISION_OUTPUT")]},
}
UPLOAD_VALUES = {"LoadImage": "image", "LoadAudio": "audio", "LoadVideo": "video"}

NEGATIVE = ("bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality, JPEG "
            "artifacts, ugly, deformed, disfigured, extra fingers, poorly drawn hands, poorly drawn face, messy "
            "background, walking backwards")


def _sampler(model, vae, speech, reference, **settings) -> dict:
    inputs = {"model": model, "vae": vae, "speech": speech, "reference": reference, "size": "480p", "steps": 40,
              "shift": 7.0, "solver": "euler", "text_cfg": 5.0, "audio_cfg": 4.0, "chunk_frames": 81,
              "context_frames": 9, "context_space": "latent", "colour_correction": 1.0, "sdedit_strength": 1.0,
              "seed": 42}
    inputs.update(settings)
    return {"class_type": "TalkGenSampler", "inputs": inputs}


def _real_model_nodes(adapter: str, clip_vision: bool = True) -> dict:
    """Loaders and prompt nodes shared by the 14B workflows (ids 1-7; 7, the CLIP vision loader, only where a
    CLIP Vision Encode uses it)."""
    nodes = {
        "1": {"class_type": "TalkGenModelLoader", "inputs": {
            "model": "wan2.1_i2v_480p_14B_fp16.safetensors", "adapter": adapter,
            "weight_dtype": "stored", "compute_dtype": "auto", "attention": "sdpa"}},
        "2": {"class_type": "TalkGenAudioEncoderLoader", "inputs": {"encoder": "wav2vec2-chinese-base_fp16.safetensors"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "4": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                     "type": "wan", "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "a person is talking to the camera, natural head motion, clear lip movements"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": NEGATIVE}},
    }
    if clip_vision:
        nodes["7"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "clip_vision_h.safetensors"}}
    return nodes


REAL_MODEL_NOTE = (
    "Model files (ComfyUI/models/...; the missing-model dialog offers each for download):\n"
    "- diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors (or fp8 / the official 7 shards)\n"
    "- model_patches/{adapter}\n"
    "- audio_encoders/wav2vec2-chinese-base_fp16.safetensors\n"
    "- vae/wan_2.1_vae.safetensors\n"
    "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n"
    "- clip_vision/clip_vision_h.safetensors (not for dubbing)\n"
)

_REPACKAGED = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
# public files the workflows name: file -> (ComfyUI models folder, download URL)
MODEL_FILES: dict[str, tuple[str, str]] = {
    "wan2.1_i2v_480p_14B_fp16.safetensors": ("diffusion_models", f"{_REPACKAGED}/diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors"),
    "wan2.1_infiniteTalk_single_fp16.safetensors": ("model_patches", f"{_REPACKAGED}/model_patches/wan2.1_infiniteTalk_single_fp16.safetensors"),
    "wan2.1_infiniteTalk_multi_fp16.safetensors": ("model_patches", f"{_REPACKAGED}/model_patches/wan2.1_infiniteTalk_multi_fp16.safetensors"),
    "wav2vec2-chinese-base_fp16.safetensors": ("audio_encoders", "https://huggingface.co/Kijai/wav2vec2_safetensors/resolve/main/wav2vec2-chinese-base_fp16.safetensors"),
    "wan_2.1_vae.safetensors": ("vae", f"{_REPACKAGED}/vae/wan_2.1_vae.safetensors"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": ("text_encoders", f"{_REPACKAGED}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"),
    "clip_vision_h.safetensors": ("clip_vision", f"{_REPACKAGED}/clip_vision/clip_vision_h.safetensors"),
    "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors": (
        "loras", "https://huggingface.co/Kijai/WanVideo_comfy/resolve/main/Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors"),
}


def _models_metadata(inputs: dict) -> list[dict]:
    """The frontend's model metadata ({name, url, directory}) for the model files a node's widgets name."""
    return [{"name": v, "url": MODEL_FILES[v][1], "directory": MODEL_FILES[v][0]}
            for v in inputs.values() if isinstance(v, str) and v in MODEL_FILES]


def _writer(video, prefix: str) -> dict:
    return {"class_type": "TalkGenVideoWriter", "inputs": {"filename_prefix": prefix, "fps": 25.0, "crf": 17,
                                                           "video": video}}


def workflows() -> dict[str, tuple[dict, str]]:
    """name -> (API graph, note text)."""
    demo = {
        "1": {"class_type": "TalkGenModelLoader", "inputs": {"model": DEMO, "adapter": "none", "weight_dtype": "stored",
                                                             "compute_dtype": "auto", "attention": "sdpa"}},
        "2": {"class_type": "TalkGenAudioEncoderLoader", "inputs": {"encoder": DEMO}},
        "3": {"class_type": "TalkGenVAELoader", "inputs": {"vae": DEMO}},
        "4": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_PREFIX + "face.png"}},
        "5": {"class_type": "LoadAudio", "inputs": {"audio": EXAMPLE_PREFIX + "speech.wav"}},
        "6": {"class_type": "TalkGenAudioEmbeds", "inputs": {"audio_encoder": ["2", 0], "audio_1": ["5", 0],
                                                             "mode": "para", "fps": 25.0, "normalize_loudness": True,
                                                             "target_lufs": -23.0}},
        "7": {"class_type": "TalkGenReference", "inputs": {"image": ["4", 0], "mode": "single"}},
        "8": _sampler(["1", 0], ["3", 0], ["6", 0], ["7", 0], size="auto", steps=4, text_cfg=1.0, audio_cfg=2.0),
        "9": _writer(["8", 0], "TalkGen/demo"),
    }
    demo_note = ("Tiny demo: runs on any machine (CPU is fine) with the model embedded in the pack; no downloads.\n"
                 "Press Run. The pack puts its example inputs into ComfyUI/input/ as talkgen_*.")

    demo_refined = {
        **{k: v for k, v in demo.items() if k != "9"},
        "11": {"class_type": "TalkGenModelLoader", "inputs": {"model": DEMO_REFINER, "adapter": "none",
                                                              "weight_dtype": "stored", "compute_dtype": "auto",
                                                              "attention": "sdpa"}},
        "10": {"class_type": "TalkGenRefiner", "inputs": {"model": ["11", 0], "vae": ["3", 0], "speech": ["6", 0],
                                                          "image": ["4", 0], "video": ["8", 0], "scale": 2.0,
                                                          "strength": 0.5, "seed": 42, "steps": 0,
                                                          "job_dir": "", "condition_noise": 0.2}},
        "9": _writer(["10", 1], "TalkGen/demo_refined"),
    }
    demo_refined_note = ("Coarse-to-fine on the embedded models (CPU is fine, no downloads): the sampler renders at "
                         "the demo size, the embedded refiner (second Model Loader) redraws it at twice the width and "
                         "height from its degraded latents and pose, with the face image as every chunk's anchor.")

    demo_two = {
        **{k: v for k, v in demo.items() if k in ("1", "2", "3", "7")},
        "4": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_PREFIX + "two_people.png"}},
        "5": {"class_type": "LoadAudio", "inputs": {"audio": EXAMPLE_PREFIX + "speech.wav"}},
        "10": {"class_type": "LoadAudio", "inputs": {"audio": EXAMPLE_PREFIX + "speech2.wav"}},
        "6": {"class_type": "TalkGenAudioEmbeds", "inputs": {"audio_encoder": ["2", 0], "audio_1": ["5", 0],
                                                             "audio_2": ["10", 0], "mode": "add", "fps": 25.0,
                                                             "normalize_loudness": True, "target_lufs": -23.0}},
        "11": {"class_type": "TalkGenSpeakerMasks", "inputs": {"speakers": 2, "strengths": "", "boxes": ""}},
        "8": _sampler(["1", 0], ["3", 0], ["6", 0], ["7", 0], size="auto", steps=4, text_cfg=1.0, audio_cfg=2.0,
                      speaker_masks=["11", 0]),
        "9": _writer(["8", 0], "TalkGen/demo_conversation"),
    }
    demo_two_note = ("Tiny two-speaker demo on the embedded model (CPU is fine, no downloads): the left person "
                     "speaks the first voice, then the right one the second (mode add). Speaker Masks: left and "
                     "right halves unless boxes or masks are given.")

    def speech_and_sampler(reference_id: str, reference: dict, **settings) -> dict:
        return {
            "10": {"class_type": "LoadAudio", "inputs": {"audio": EXAMPLE_PREFIX + "speech.wav"}},
            "11": {"class_type": "TalkGenAudioEmbeds", "inputs": {"audio_encoder": ["2", 0], "audio_1": ["10", 0],
                                                                  "mode": "para", "fps": 25.0,
                                                                  "normalize_loudness": True, "target_lufs": -23.0}},
            reference_id: reference,
            "20": _sampler(["1", 0], ["3", 0], ["11", 0], [reference_id, 0], positive=["5", 0], negative=["6", 0],
                           **settings),
        }

    i2v = {
        **_real_model_nodes("wan2.1_infiniteTalk_single_fp16.safetensors"),
        "8": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_PREFIX + "face.png"}},
        "9": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["7", 0], "image": ["8", 0], "crop": "none"}},
        **speech_and_sampler("12", {"class_type": "TalkGenReference", "inputs": {"image": ["8", 0], "mode": "single"}}),
        "21": _writer(["20", 0], "TalkGen/infinitetalk"),
    }
    i2v["20"]["inputs"]["clip_vision_output"] = ["9", 0]

    dubbing = {
        **_real_model_nodes("wan2.1_infiniteTalk_single_fp16.safetensors", clip_vision=False),
        # "video-preview": the frontend's preview widget, which its prompts carry (and the server ignores)
        "8": {"class_type": "LoadVideo", "inputs": {"file": EXAMPLE_PREFIX + "source.mp4", "video-preview": ""}},
        **speech_and_sampler("12", {"class_type": "TalkGenDubbingSource", "inputs": {"anchor": "chunk_start",
                                                                                     "video": ["8", 0]}}),
        "21": _writer(["20", 0], "TalkGen/dubbed"),
    }

    two = {
        **_real_model_nodes("wan2.1_infiniteTalk_multi_fp16.safetensors"),
        "8": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_PREFIX + "two_people.png"}},
        "9": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["7", 0], "image": ["8", 0], "crop": "none"}},
        "10": {"class_type": "LoadAudio", "inputs": {"audio": EXAMPLE_PREFIX + "speech.wav"}},
        "13": {"class_type": "LoadAudio", "inputs": {"audio": EXAMPLE_PREFIX + "speech2.wav"}},
        "11": {"class_type": "TalkGenAudioEmbeds", "inputs": {"audio_encoder": ["2", 0], "audio_1": ["10", 0],
                                                              "audio_2": ["13", 0], "mode": "add", "fps": 25.0,
                                                              "normalize_loudness": True, "target_lufs": -23.0}},
        "12": {"class_type": "TalkGenReference", "inputs": {"image": ["8", 0], "mode": "single"}},
        "14": {"class_type": "TalkGenSpeakerMasks", "inputs": {"speakers": 2, "strengths": "", "boxes": ""}},
        "20": _sampler(["1", 0], ["3", 0], ["11", 0], ["12", 0], positive=["5", 0], negative=["6", 0],
                       clip_vision_output=["9", 0], speaker_masks=["14", 0]),
        "21": _writer(["20", 0], "TalkGen/conversation"),
    }

    lora = {
        **_real_model_nodes("wan2.1_infiniteTalk_single_fp16.safetensors"),
        "8": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_PREFIX + "face.png"}},
        "9": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["7", 0], "image": ["8", 0], "crop": "none"}},
        "15": {"class_type": "TalkGenLoRA", "inputs": {"model": ["1", 0],
                                                       "lora": "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",
                                                       "strength": 1.0}},
        **speech_and_sampler("12", {"class_type": "TalkGenReference", "inputs": {"image": ["8", 0], "mode": "single"}},
                             steps=4, text_cfg=1.0, audio_cfg=2.0, shift=5.0, clip_vision_output=["9", 0]),
        "21": _writer(["20", 0], "TalkGen/fourstep"),
    }
    lora["20"]["inputs"]["model"] = ["15", 0]

    refined = {
        **i2v,
        "22": {"class_type": "TalkGenRefiner", "inputs": {"model": ["1", 0], "vae": ["3", 0], "speech": ["11", 0],
                                                          "image": ["8", 0], "video": ["20", 0], "scale": 1.5,
                                                          "strength": 0.5, "seed": 42, "steps": 0, "job_dir": "",
                                                          "clip_vision_output": ["9", 0], "condition_noise": 0.2}},
        "21": _writer(["22", 1], "TalkGen/refined"),
    }
    refined_note = REAL_MODEL_NOTE.format(adapter="wan2.1_infiniteTalk_single_fp16.safetensors") + (
        "Coarse-to-fine with the same 14B model (no refiner weights exist for it: training-free): the sampler renders "
        "at 480p, the Refiner upscales to 1.5x, noises to strength and denoises again with the face image as every "
        "chunk's anchor.")

    native = {
        **_real_model_nodes("wan2.1_infiniteTalk_single_fp16.safetensors"),
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_i2v_480p_14B_fp16.safetensors",
                                                     "weight_dtype": "default"}},
        "16": {"class_type": "ModelPatchLoader", "inputs": {"name": "wan2.1_infiniteTalk_single_fp16.safetensors"}},
        "8": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_PREFIX + "face.png"}},
        "9": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["7", 0], "image": ["8", 0], "crop": "none"}},
        **speech_and_sampler("12", {"class_type": "TalkGenReference", "inputs": {"image": ["8", 0], "mode": "single"}},
                             model_patch=["16", 0], clip_vision_output=["9", 0]),
        "21": _writer(["20", 0], "TalkGen/native"),
    }
    native_note = REAL_MODEL_NOTE.format(adapter="wan2.1_infiniteTalk_single_fp16.safetensors") + (
        "ComfyUI's own loaders: Load Diffusion Model (GGUF or LoRA loaders fit between it and the sampler) and "
        "Load Model Patch; ComfyUI places the model in memory, whole or in part.")

    lora_note = REAL_MODEL_NOTE.format(adapter="wan2.1_infiniteTalk_single_fp16.safetensors") + (
        "- loras/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors\n"
        "4 steps, text CFG 1 (one pass saved), audio CFG 2.")
    return {
        "talkgen_demo": (demo, demo_note),
        "talkgen_demo_refined": (demo_refined, demo_refined_note),
        "talkgen_demo_two_speakers": (demo_two, demo_two_note),
        "infinitetalk_refined": (refined, refined_note),
        "infinitetalk_image_to_video": (i2v, REAL_MODEL_NOTE.format(adapter="wan2.1_infiniteTalk_single_fp16.safetensors")
                                        + "Any length: the video follows the audio. Pick your own image and voice in the Load nodes."),
        "infinitetalk_video_dubbing": (dubbing, REAL_MODEL_NOTE.format(adapter="wan2.1_infiniteTalk_single_fp16.safetensors")
                                       + "Sparse-frame dubbing: the source video gives identity, camera and gestures; "
                                         "the audio is the new voice."),
        "multitalk_two_speakers": (two, REAL_MODEL_NOTE.format(adapter="wan2.1_infiniteTalk_multi_fp16.safetensors")
                                   + "Two speakers taking turns (mode add). Speaker 1 = left half, speaker 2 = right "
                                     "half unless boxes or masks are given."),
        "infinitetalk_lightx2v_4step": (lora, lora_note),
        "infinitetalk_native_loaders": (native, native_note),
    }


def _node_spec(class_type: str, node_classes: dict[str, type]) -> dict:
    """Ordered widget names, socket inputs and outputs of a node type."""
    if class_type in NATIVE_NODES:
        return NATIVE_NODES[class_type]
    cls = node_classes[class_type]
    spec = cls.INPUT_TYPES()
    widgets, sockets = [], []
    for section in ("required", "optional"):
        for name, (kind, *_) in spec.get(section, {}).items():
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets.append(name)
            else:
                sockets.append((name, kind))
    return {"widgets": widgets, "inputs": sockets, "outputs": list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))}


def _widget_values(class_type: str, spec: dict, inputs: dict, node_classes: dict[str, type]) -> list:
    values = []
    defaults = {}
    if class_type in node_classes:
        every = {**node_classes[class_type].INPUT_TYPES().get("required", {}),
                 **node_classes[class_type].INPUT_TYPES().get("optional", {})}
        defaults = {name: (opts[1].get("default") if len(opts) > 1 else None) for name, opts in every.items()}
    for name in spec["widgets"]:
        if name == "upload":
            values.append(UPLOAD_VALUES[class_type])
            continue
        values.append(inputs.get(name, defaults.get(name)))
        if name in SEED_INPUTS:
            values.append("fixed")
    return values


NODE_WIDTH, COLUMN_GAP, ROW_GAP = 360, 60, 50


def _node_height(spec: dict) -> int:
    """Generous height for a node's title, sockets and widgets (the frontend's rows are about 24 px), so
    stacked nodes never overlap."""
    sockets = max(len(spec["inputs"]), len(spec["outputs"]))
    widgets = len(spec["widgets"]) - spec["widgets"].count("upload")
    return 46 + 24 * sockets + 28 * widgets


def api_to_ui(graph: dict, note: str, node_classes: dict[str, type]) -> dict:
    """The UI (litegraph) document for an API graph: nodes in columns by depth, stacked by their heights,
    links from the API links, and model metadata on each loader node."""
    depth: dict[str, int] = {}

    def level(node_id: str) -> int:
        if node_id not in depth:
            links = [v for v in graph[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((level(v[0]) for v in links), default=-1)
        return depth[node_id]

    ids = sorted(graph, key=int)
    column_tops: dict[int, int] = {}
    nodes, links, models = [], [], []
    specs = {i: _node_spec(graph[i]["class_type"], node_classes) for i in ids}
    outgoing: dict[tuple[str, int], list[int]] = {}
    for to_id in ids:
        for name, value in graph[to_id]["inputs"].items():
            if isinstance(value, list):
                from_id, slot = value
                to_slot = [n for n, _ in specs[to_id]["inputs"]].index(name)
                link_id = len(links) + 1
                links.append([link_id, int(from_id), slot, int(to_id), to_slot, specs[from_id]["outputs"][slot][1]])
                outgoing.setdefault((from_id, slot), []).append(link_id)
    link_to = {(str(link[3]), link[4]): link[0] for link in links}
    for order, node_id in enumerate(sorted(ids, key=lambda i: (level(i), int(i)))):
        class_type, spec = graph[node_id]["class_type"], specs[node_id]
        column = level(node_id)
        top = column_tops.get(column, 60)
        height = _node_height(spec)
        column_tops[column] = top + height + ROW_GAP
        properties: dict = {"Node name for S&R": class_type}
        node_models = _models_metadata(graph[node_id]["inputs"])
        if node_models:
            properties["models"] = node_models
            models.extend(m for m in node_models if m not in models)
        nodes.append({
            "id": int(node_id), "type": class_type, "pos": [60 + (NODE_WIDTH + COLUMN_GAP) * column, top],
            "size": [NODE_WIDTH, height], "flags": {}, "order": order, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link_to.get((node_id, k))} for k, (n, t) in enumerate(spec["inputs"])],
            "outputs": [{"name": n, "type": t, "links": outgoing.get((node_id, k), []), "slot_index": k}
                        for k, (n, t) in enumerate(spec["outputs"])],
            "properties": properties,
            "widgets_values": _widget_values(class_type, spec, graph[node_id]["inputs"], node_classes),
        })
    note_id = max(int(i) for i in ids) + 1
    nodes.append({"id": note_id, "type": "Note", "pos": [60, -260], "size": [720, 220], "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [note]})
    document = {"last_node_id": note_id, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
                "config": {}, "extra": {"ds": {"scale": 0.7, "offset": [0, 320]}}, "version": 0.4}
    if models:
        document["models"] = models
    return document


THUMBNAIL_SOURCES = {"multitalk_two_speakers": "two_people.png", "talkgen_demo_two_speakers": "two_people.png"}  # the rest show face.png
THUMBNAIL_SIZE = (384, 384)


def thumbnail(name: str) -> bytes:
    """The template browser's picture for a workflow: its example input on a dark card, as JPEG."""
    import io

    from PIL import Image

    source = Image.open(REPO / "example_inputs" / THUMBNAIL_SOURCES.get(name, "face.png")).convert("RGB")
    card = Image.new("RGB", THUMBNAIL_SIZE, (24, 26, 32))
    source.thumbnail((THUMBNAIL_SIZE[0] - 32, THUMBNAIL_SIZE[1] - 32))
    card.paste(source, ((THUMBNAIL_SIZE[0] - source.width) // 2, (THUMBNAIL_SIZE[1] - source.height) // 2))
    buffer = io.BytesIO()
    card.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def with_widget_defaults(graph: dict, node_classes: dict[str, type]) -> dict:
    """The API graph as the frontend's graphToPrompt() writes it: every widget of our nodes has its value,
    defaults included, in INPUT_TYPES order."""
    complete = {}
    for node_id, node in graph.items():
        inputs = dict(node["inputs"])
        if node["class_type"] in node_classes:
            spec = _node_spec(node["class_type"], node_classes)
            values = _widget_values(node["class_type"], spec, inputs, node_classes)
            names = [w for w in spec["widgets"] for _ in range(2 if w in SEED_INPUTS else 1)]
            for name, value in zip(names, values):
                if name not in inputs and value is not None:
                    inputs[name] = value
        complete[node_id] = {"class_type": node["class_type"], "inputs": inputs}
    return complete


def rendered_files() -> dict[str, str]:
    """Path relative to workflows/ -> text, for every UI workflow and API twin."""
    sys.path.insert(0, str(REPO))
    import importlib.util

    spec = importlib.util.spec_from_file_location("talkgen_pack_nodes", REPO / "nodes" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "nodes")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["talkgen_pack_nodes"] = module
    spec.loader.exec_module(module)
    files = {}
    for name, (graph, note) in workflows().items():
        api = with_widget_defaults(graph, module.NODE_CLASS_MAPPINGS)
        files[f"api/{name}.json"] = json.dumps(api, indent=2) + "\n"
        files[f"{name}.json"] = json.dumps(api_to_ui(graph, note, module.NODE_CLASS_MAPPINGS), indent=2) + "\n"
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the shipped files")
    args = parser.parse_args()
    stale = []
    API_WORKFLOWS.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_files().items():
        path = WORKFLOWS / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    for name in workflows():
        picture = WORKFLOWS / f"{name}.jpg"
        if args.check:
            if not picture.is_file():
                stale.append(picture.name)
        else:
            picture.write_bytes(thumbnail(name))
    if stale:
        print("out of date (run python scripts/build_workflows.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
