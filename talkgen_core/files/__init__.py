"""Writing files safely next to the user's own: atomic outputs, exclusive temps, folder locks, path guards.

* ``atomic``  temp files with unpredictable names made exclusively, renamed over the target when complete
* ``lock``    an exclusive lock on a folder (one run per job folder)
* ``guard``   refusing an output that is one of the inputs; keeping relative folders inside their root
"""
