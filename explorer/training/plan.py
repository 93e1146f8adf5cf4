"""Fitting a run to its time budget from the throughput measured on this machine.

A time budget used to cut whole epochs off a schedule planned for all of them: on a machine
four times slower the quick classifier kept 2 of its 4 epochs and stopped with its learning
rate still high (val_acc 0.80). Here the run does the most steps that fit, in shorter epochs or
fewer (whichever leaves more steps once validation is paid for), and the schedule is compressed
onto them, so it still ends with a low learning rate. Pure arithmetic: the trainer measures,
this decides.
"""

from __future__ import annotations

from dataclasses import dataclass

SAFETY = 1.08
"""The rest of a run takes a little longer than its steps and validations predict
(checkpoints, status writes, a slower step now and then)."""

VAL_COST = 0.5
"""A validation example costs about this share of a training example (forward only, plus
decoding and scoring), until a first validation has been timed."""


@dataclass(frozen=True)
class StepPlan:
    """How many epochs a run does and how many optimiser steps each has."""

    epochs: int
    steps_per_epoch: int

    def total(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass(frozen=True)
class Position:
    """Where a run stands when it plans: finished epochs, steps done in the current one, and
    the seconds left of its budget."""

    epoch: int
    step_in_epoch: int
    seconds_left: float


@dataclass(frozen=True)
class Throughput:
    """What this machine measured: seconds of one optimiser step, of one validation pass."""

    step_seconds: float
    val_seconds: float


def estimated_val_seconds(step_seconds: float, full_steps: int, val_share: float) -> float:
    """A validation pass before one was timed: ``val_share`` is the validation examples per
    training example (e.g. validation images / training images)."""
    return VAL_COST * val_share * full_steps * step_seconds


def fit(asked: StepPlan, at: Position, speed: Throughput) -> StepPlan:
    """The plan for the rest of a run whose recipe is ``asked`` (full epochs): the most
    optimiser steps that fit the seconds left, each epoch's validation counted. Every epoch
    kept, each shorter, while validating is cheap; fewer, fuller epochs where a validation
    costs many steps (a pass over 100 images can cost as much as 15 training steps). At least
    the current epoch, ended as soon as possible, when it has begun."""
    left = asked.epochs - at.epoch
    if left <= 0:
        return StepPlan(at.epoch, asked.steps_per_epoch)
    step, val = max(speed.step_seconds, 1e-9), max(speed.val_seconds, 0.0)
    # the current epoch's done steps count as still to run: every epoch then has the same length
    room = max(at.seconds_left, 0.0) / SAFETY + at.step_in_epoch * step

    def steps_each(epochs: int) -> int:
        return max(0, min(asked.steps_per_epoch, int((room / epochs - val) // step)))

    # the most steps in all; of equals, more epochs (more checkpoints, a finer curve)
    epochs = max(range(1, left + 1), key=lambda e: (e * steps_each(e), e))
    if steps_each(epochs) >= 1:
        return StepPlan(at.epoch + epochs, max(at.step_in_epoch, steps_each(epochs)))
    if at.step_in_epoch == 0 and at.epoch >= 1:  # between epochs: stop here
        return StepPlan(at.epoch, asked.steps_per_epoch)
    return StepPlan(at.epoch + 1, max(at.step_in_epoch, 1))  # this epoch ends now


def shortfall_note(done_steps: int, asked_steps: int, budget: float, finished: bool) -> str:
    """The sentence a run shows (``status.json``'s ``budget_note``) when its time budget cut
    the recipe's steps; "" when it did not."""
    if done_steps >= asked_steps:
        return ""
    if finished:
        return (
            f"this machine trained {done_steps} of {asked_steps} planned steps within the "
            f"{budget:.0f} s time budget; expect lower accuracy"
        )
    return (
        f"this machine fits {done_steps} of {asked_steps} planned steps in the "
        f"{budget:.0f} s time budget; expect lower accuracy"
    )
