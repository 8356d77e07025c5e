"""Names of the pack's own socket types, shared by every node module."""

MODEL = "TALKGEN_MODEL"
AUDIO_ENCODER = "TALKGEN_AUDIO_ENCODER"
SPEECH = "TALKGEN_SPEECH"
SPEAKER_MASKS = "TALKGEN_SPEAKER_MASKS"
REFERENCE = "TALKGEN_REFERENCE"
VAE_OURS = "TALKGEN_VAE"
# a sampler's VAE input takes ComfyUI's native Wan VAE or ours (ComfyUI matches comma-separated type unions)
ANY_VAE = f"VAE,{VAE_OURS}"
# a sampler's model input takes ours or ComfyUI's native MODEL (which brings the InfiniteTalk MODEL_PATCH along)
ANY_MODEL = f"{MODEL},MODEL"
MODEL_PATCH = "MODEL_PATCH"

CATEGORY = "TalkGen"
DEMO_CHOICE = "talkgen-demo (embedded)"
DEMO_DISTILLED_CHOICE = "talkgen-demo distilled (embedded)"  # the Model Loader's few-step student
DEMO_REFINER_CHOICE = "talkgen-demo refiner (embedded)"  # the Model Loader's embedded refiner (TalkGen Refiner)
NONE_CHOICE = "none"
