"""Conditioning inputs that are neither audio nor model weights: speaker masks, pixel layouts."""
