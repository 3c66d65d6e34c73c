"""`ganbench selftest`: the check a user runs on their own machine before a long sweep, and the one our
own GPU windows run. What could not be tested where ganbench was built (a GPU, a multi-GPU node, a CPU
without some instruction set) is proven here, on the machine that will do the work.

Parts, each in its own subprocess with its own timeout (`runner.py`), each writing its record as it goes
(`record.py`), so a crash, a hang or an out-of-memory loses only that part:

- env         versions (torch, CUDA, cuDNN, torch-fidelity, tqdm, ganbench), device and memory, the TF32 and
              benchmark flags, the data and weights ganbench would use (`figures.py`)
- smoke       two K = 4 groups using every per-run tensor: captured graph = eager, a frozen run stays
              frozen, a resumed run takes the same next step, fused vs alone, no host sync, memory (`checks.py`)
- structures  every fusion key of a suite as a K = 4 group, captured and replayed against eager (`checks.py`)
- engine      run-steps/s of the stacked engine against the dense ceiling, K × precision (`figures.py`)
- eval        a group's evaluation at the suite's own settings, split into its pieces, and the device
              metric path against torch-fidelity's (`figures.py`)

On a CPU every part runs at toy sizes (the code paths, not figures).
"""

PARTS = ("env", "smoke", "structures", "engine", "eval")
