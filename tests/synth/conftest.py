import torch

# The renderer works on many small tensors; on a shared 2-core machine intra-op threads mostly wait on each
# other (measured 25x slower wall time), so these tests run single-threaded.
torch.set_num_threads(1)
