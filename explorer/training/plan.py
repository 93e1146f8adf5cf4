"""Fitting a run to its time budget from the throughput measured on this machine.

A time budget used to cut whole epochs off a schedule planned for all of them: on a machine
four times slower the quick classifier kept 2 of its 4 epochs and stopped with its learning
rate still high (val_acc 0.80). Here the run keeps its epochs and its schedule's shape and does
fewer steps in each: the schedule is compressed onto the steps that fit, so it still ends with a
low learning rate. Only when an epoch would shrink below :data:`MIN_EPOCH_FRACTION` of its
data are there fewer epochs. Pure arithmetic: the trainer measures, this decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SAFETY = 1.08
"""The rest of a run takes a little longer than its steps and validations predict
(checkpoints, status writes, a slower step now and then)."""

MIN_EPOCH_FRACTION = 0.25
"""Shorter epochs than this share of the data would spend more time validating than training:
below it the plan keeps this share and drops epochs instead."""

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
    """The plan for the rest of a run whose recipe is ``asked`` (full epochs): the most steps
    per epoch (up to a full epoch) with which every remaining epoch and its validation fit the
    seconds left; fewer epochs of :data:`MIN_EPOCH_FRACTION` of the data when even that does
    not fit; at least the current epoch (ended as soon as possible) when it has begun."""
    left = asked.epochs - at.epoch
    if left <= 0:
        return StepPlan(at.epoch, asked.steps_per_epoch)
    step, val = max(speed.step_seconds, 1e-9), max(speed.val_seconds, 0.0)
    # the current epoch's done steps count as still to run: every epoch then has the same length
    room = max(at.seconds_left, 0.0) / SAFETY + at.step_in_epoch * step
    per_epoch = int((room / left - val) // step)
    shortest = max(1, math.ceil(asked.steps_per_epoch * MIN_EPOCH_FRACTION))
    if per_epoch >= shortest:
        return StepPlan(asked.epochs, max(at.step_in_epoch, min(per_epoch, asked.steps_per_epoch)))
    epochs = int(room // (shortest * step + val))
    if epochs >= 1:
        return StepPlan(at.epoch + epochs, max(at.step_in_epoch, shortest))
    if at.step_in_epoch == 0 and at.epoch >= 1:  # between epochs: stop here
        return StepPlan(at.epoch, asked.steps_per_epoch)
    # the current (or first) epoch ends as soon as the time allows, never before this step
    steps = max(at.step_in_epoch, 1, min(shortest, int((room - val) // step)))
    return StepPlan(at.epoch + 1, steps)


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
