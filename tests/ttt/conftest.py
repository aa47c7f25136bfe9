"""TTT tests run torch on one thread: these models are tiny, and on a shared CPU two OpenMP threads
spin against other processes (measured: a 256-token forward+backward 5 ms on one thread, 0.8 s on two)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
