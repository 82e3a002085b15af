#!/usr/bin/env bash
# What the GPU machine has (recorded into the first call's output).
nvidia-smi --query-gpu=name,memory.total,memory.free,memory.used,pcie.link.gen.current,pcie.link.width.current,clocks.max.memory,driver_version --format=csv
nproc; free -g; df -h /tmp | tail -1; nvcc --version | tail -2; cmake --version | head -1
python3 -c 'import torch, numpy; print("torch", torch.__version__, torch.cuda.device_count(), "numpy", numpy.__version__)'
ldd --version | head -1
