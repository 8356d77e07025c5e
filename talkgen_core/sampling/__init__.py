"""Sampling: flow-matching schedules and solvers, text + audio guidance, and the streaming chunk loop.

Modules (each with one job):

* ``schedules``  time grids (official shifted flow-matching grid, SDEdit start times)
* ``solvers``    ``solver(model_fn, x, timesteps, callback=None, generator=None)`` and the ``SOLVERS`` registry
* ``wrappers``   the DiT as a velocity function of one chunk's conditioning; CFG branches; context pinning
* ``guidance``   the official 3-pass / 2-pass / 1-pass CFG, batched passes, APG
* ``chunks``     the chunk plan (chunk length, context frames, stride, exact trim)
* ``references`` reference frames per chunk: image, per-chunk images, keyframes, source video (dubbing)
* ``colour``     Lab mean/std colour correction towards the reference
* ``jobdir``     per-chunk latents + manifest for exact resume
* ``streaming``  the chunk loop's services (``StreamingSampler``, ``ChunkLoop``: job folder, progress, cancel,
                 writer, trim) with an explicit state object
* ``strategies`` long-video strategies, one module each: ``infinitetalk`` (default), ``sliding-window``,
                 ``memory-bank``; the ``STRATEGIES`` registry
* ``sizes``      output sizes (official buckets, WxH, demo)

Submodules are imported on use; ``import talkgen_core.sampling`` itself loads nothing heavy.
"""
