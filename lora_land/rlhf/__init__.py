"""The RLHF Workflow in miniature: online iterative DPO on LoRA adapters (see `loop.py`)."""
