import torch

# Tests use tiny tensors: one thread avoids thread start-up and contention costs that dwarf the work itself.
torch.set_num_threads(1)
