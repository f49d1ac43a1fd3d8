"""``int8`` and ``bf16``: the model stays a PyTorch transformers model."""

from __future__ import annotations

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    register_method,
    save_model_parts,
    torch_parent,
)

__all__ = ["Bf16Method", "Int8Method"]


@register_method
class Int8Method(Method):
    name = "int8"
    summary = (
        "PyTorch dynamic int8 of the Linear layers (torch.ao; the weights stay fp32 on disk and "
        "are quantized when loaded)"
    )

    def check(self, job: Job) -> None:
        torch_parent(job, self.name)

    def apply(self, job: Job) -> Compressed:
        import torch

        from trustune.compress.hardware import int8_is_fast

        model = torch_parent(job, self.name)
        model.float().save_pretrained(job.model_dir, safe_serialization=True)
        save_model_parts(job, config=False)
        notes = []
        if not int8_is_fast():
            notes.append("this CPU has no VNNI/AMX int8 instructions: int8 may be slower here")
        return Compressed(
            engine=f"torch {torch.__version__} torch.ao dynamic quantization (deprecated in "
            "favour of torchao; fbgemm/x86 kernels)",
            load_transform="dynamic-int8",
            settings={"layers": "nn.Linear", "weights": "int8 per tensor", "on_disk": "fp32"},
            notes=notes,
        )  # fmt: skip


@register_method
class Bf16Method(Method):
    name = "bf16"
    summary = "bf16 weights (half the size); loads in plain transformers"

    def check(self, job: Job) -> None:
        torch_parent(job, self.name)

    def apply(self, job: Job) -> Compressed:
        import copy

        import torch

        from trustune.compress.hardware import bf16_is_native

        model = copy.deepcopy(torch_parent(job, self.name))  # the guard measures the parent
        model.to(torch.bfloat16).save_pretrained(job.model_dir, safe_serialization=True)
        del model
        save_model_parts(job, config=False)
        notes = []
        if not bf16_is_native():
            notes.append("this CPU has no native bf16 (AVX512-BF16/AMX): bf16 is emulated, slower")
        return Compressed(
            engine=f"torch {torch.__version__} (bf16)",
            settings={"dtype": "bfloat16"},
            notes=notes,
        )
