"""Training settings: one :class:`TrainConfig` per run, filled from a preset and the task's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from explorer.errors import ExplorerError

# Recipes measured on the embedded sample with two CPU cores (docs/BENCHMARKS.md).
PRESETS: dict[str, dict[str, dict]] = {
    "quick": {
        "alexnet-classic": {
            "epochs": 8,
            "batch_size": 64,
            "lr": 3e-4,
            "image_size": 227,
            "time_budget": 230,
        },
        "alexnet": {
            "epochs": 6,
            "batch_size": 64,
            "lr": 3e-4,
            "image_size": 224,
            "time_budget": 230,
        },
        "smp-deeplabv3": {
            "epochs": 20,
            "batch_size": 16,
            "lr": 2e-3,
            "image_size": 128,
            "encoder": "resnet18",
            "time_budget": 420,
        },
        "smp-deeplabv3plus": {
            "epochs": 20,
            "batch_size": 16,
            "lr": 2e-3,
            "image_size": 128,
            "encoder": "resnet18",
            "time_budget": 420,
        },
        "deeplabv3-mobilenet-v3-large": {
            "epochs": 16,
            "batch_size": 16,
            "lr": 1e-3,
            "image_size": 160,
            "time_budget": 420,
        },
    },
}
DEFAULTS = {
    "classify": {"epochs": 30, "batch_size": 64, "lr": 3e-4, "image_size": 227},
    "segment": {
        "epochs": 60,
        "batch_size": 16,
        "lr": 1e-3,
        "image_size": 256,
        "encoder": "resnet34",
    },
}
TASK_MODELS = {
    "classify": ("alexnet-classic", "alexnet"),
    "segment": (
        "smp-deeplabv3",
        "smp-deeplabv3plus",
        "deeplabv3-mobilenet-v3-large",
        "deeplabv3-resnet50",
        "deeplabv3-resnet101",
    ),
}


@dataclass
class TrainConfig:
    """Every setting of a run (None = the preset's, else the task's default)."""

    task: str
    coco: str
    images: str
    model: str
    val_coco: str | None = None
    val_images: str | None = None
    encoder: str | None = None
    pretrained: bool = False
    freeze_features: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str = "auto"
    preset: str | None = None
    out: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    min_area: float = 64.0
    class_weights: bool = False
    dice: bool = False
    time_budget: float | None = None
    workers: int = 2
    extra: dict = field(default_factory=dict)

    def resolved(self) -> TrainConfig:
        if self.task not in TASK_MODELS:
            raise ExplorerError(f"unknown task {self.task!r}; valid: classify, segment")
        if self.model not in TASK_MODELS[self.task]:
            raise ExplorerError(
                f"{self.model} cannot be trained for {self.task}; valid: "
                f"{', '.join(TASK_MODELS[self.task])}"
            )
        if self.preset and self.preset not in PRESETS:
            raise ExplorerError(f"unknown preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        base = {**DEFAULTS[self.task], **(PRESETS.get(self.preset or "", {}).get(self.model, {}))}
        if self.model == "alexnet-classic":
            base["image_size"] = 227  # the 2012 layout's fully connected layer needs 6x6x256
        values = asdict(self)
        for k, v in base.items():
            if values.get(k) is None:
                values[k] = v
        return TrainConfig(**values)
