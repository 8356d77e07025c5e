"""ITU-R BS.1770 K-weighting: two biquads, run block-wise in numpy (no scipy).

The coefficients are the RBJ audio-EQ-cookbook ones with pyloudnorm's parameters (a +4 dB high shelf at
1500 Hz, Q 1/sqrt(2), then a 38 Hz high pass, Q 0.5), so loudness agrees with pyloudnorm's meter (to about
1e-12 LU). Importing ``scipy.signal`` for ``lfilter`` cost about 2 s of every run; here each biquad is the
same linear recurrence evaluated exactly ``BLOCK`` samples at a time: inside a block the output is the
zero-state response (a lower-triangular Toeplitz matrix of the impulse response) plus the response to the
carried state, and only the 2-value state is carried from block to block in a loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK = 128  # samples per matmul; the Python loop runs once per block


@dataclass(frozen=True)
class Biquad:
    """``b0 + b1 z^-1 + b2 z^-2`` over ``1 + a1 z^-1 + a2 z^-2`` (normalised so that a0 = 1)."""

    b0: float
    b1: float
    b2: float
    a1: float
    a2: float


def high_shelf(gain_db: float, q: float, fc: float, rate: float) -> Biquad:
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * fc / rate
    cos, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
    root = 2.0 * math.sqrt(a) * alpha
    a0 = (a + 1) - (a - 1) * cos + root
    return Biquad(
        b0=a * ((a + 1) + (a - 1) * cos + root) / a0,
        b1=-2 * a * ((a - 1) + (a + 1) * cos) / a0,
        b2=a * ((a + 1) + (a - 1) * cos - root) / a0,
        a1=2 * ((a - 1) - (a + 1) * cos) / a0,
        a2=((a + 1) - (a - 1) * cos - root) / a0,
    )


def high_pass(q: float, fc: float, rate: float) -> Biquad:
    w0 = 2.0 * math.pi * fc / rate
    cos, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
    a0 = 1 + alpha
    return Biquad(b0=(1 + cos) / 2 / a0, b1=-(1 + cos) / a0, b2=(1 + cos) / 2 / a0, a1=-2 * cos / a0,
                  a2=(1 - alpha) / a0)  # fmt: skip


def k_weighting(rate: float) -> tuple[Biquad, Biquad]:
    """BS.1770's pre-filter (high shelf) and RLB high pass at ``rate`` Hz, applied in this order."""
    return high_shelf(4.0, 1 / math.sqrt(2), 1500.0, rate), high_pass(0.5, 38.0, rate)


class BlockFilter:
    """A biquad as a state-space recurrence (transposed direct form II, as ``scipy.signal.lfilter``).

    ``y[n] = b0 x[n] + s1``, ``s <- A s + B x[n]`` with ``A = [[-a1, 1], [-a2, 0]]``,
    ``B = [b1 - a1 b0, b2 - a2 b0]``. For a block of ``L`` samples: ``y = T x + O s`` and
    ``s' = C x + A^L s``, all four matrices precomputed once.
    """

    def __init__(self, f: Biquad, block: int = BLOCK) -> None:
        self.block = block
        a = np.array([[-f.a1, 1.0], [-f.a2, 0.0]])
        b = np.array([f.b1 - f.a1 * f.b0, f.b2 - f.a2 * f.b0])
        powers = [np.eye(2)]
        for _ in range(block):
            powers.append(a @ powers[-1])
        self.powers = np.stack(powers)  # [L + 1, 2, 2]: A^0 .. A^L
        impulse = np.concatenate([[f.b0], self.powers[: block - 1, 0] @ b])  # h[0] = b0, h[n] = (A^(n-1) B)_0
        lags = np.arange(block)[:, None] - np.arange(block)[None, :]
        self.toeplitz = np.where(lags >= 0, impulse[np.clip(lags, 0, None)], 0.0)  # [L, L]
        self.from_state = self.powers[:block, 0]  # [L, 2]: y[n] gets (A^n s)_0
        self.to_state = (self.powers[block - 1 :: -1] @ b).T  # [2, L]: x[k] adds A^(L-1-k) B to the end state

    def __call__(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``x`` [S] float64 starting from ``state`` [2]; returns (y [S], state after the last sample)."""
        n, size = x.shape[0], self.block
        full = n // size
        y = np.empty(n)
        blocks = x[: full * size].reshape(full, size)
        zero_state = blocks @ self.toeplitz.T  # [full, L]
        pushed = blocks @ self.to_state.T  # [full, 2]
        (m00, m01), (m10, m11) = self.powers[size].tolist()
        s0, s1 = state.tolist()
        starts = []
        for p0, p1 in pushed.tolist():  # Python floats: the loop runs once per block, numpy calls cost more
            starts.append((s0, s1))
            s0, s1 = m00 * s0 + m01 * s1 + p0, m10 * s0 + m11 * s1 + p1
        state = np.array([s0, s1])
        y[: full * size] = (zero_state + np.array(starts).reshape(full, 2) @ self.from_state.T).reshape(-1)
        rest = n - full * size
        if rest:
            tail = x[full * size :]
            y[full * size :] = self.toeplitz[:rest, :rest] @ tail + self.from_state[:rest] @ state
            state = self.powers[rest] @ state + self.to_state[:, size - rest :] @ tail
        return y, state
