"""The time budget's plan: what a run does on a machine slower than its recipe was measured on.
Pure arithmetic on given throughputs (no clock): the same answers on every machine."""

from __future__ import annotations

from explorer.training.plan import (
    Position,
    StepPlan,
    Throughput,
    estimated_val_seconds,
    fit,
    shortfall_note,
)

# the quick classifier on the sample: 4 epochs of 37 steps; on the recipe's machine a step takes
# ~0.5 s and a validation ~4 s, so the whole schedule needs ~90 s of its 230 s budget
RECIPE = StepPlan(epochs=4, steps_per_epoch=37)
FAST = Throughput(step_seconds=0.5, val_seconds=4.0)


def slower(times: float) -> Throughput:
    return Throughput(FAST.step_seconds * times, FAST.val_seconds * times)


def test_the_recipe_is_kept_where_it_fits():
    assert fit(RECIPE, Position(0, 5, 220), FAST) == RECIPE
    assert fit(RECIPE, Position(2, 0, 120), FAST) == RECIPE


def test_a_slow_machine_keeps_every_epoch_with_fewer_steps():
    # 4x slower: 4 full epochs need ~360 s, 200 s are left after the probe steps
    plan = fit(RECIPE, Position(0, 5, 200), slower(4))
    assert plan.epochs == 4 and 10 <= plan.steps_per_epoch < 37
    steps, vals = plan.total() - 5, plan.epochs * slower(4).val_seconds
    assert steps * slower(4).step_seconds + vals <= 200  # it fits what was left


def test_a_very_slow_machine_drops_epochs_before_epochs_get_too_short():
    plan = fit(RECIPE, Position(0, 5, 200), slower(20))
    assert 1 <= plan.epochs < 4
    assert plan.steps_per_epoch == 10  # a quarter of the data, rounded up


def test_a_begun_epoch_is_never_planned_shorter_than_its_done_steps():
    plan = fit(RECIPE, Position(1, 30, 1), slower(10))
    assert plan == StepPlan(2, 30)  # this epoch ends now


def test_nothing_more_between_epochs_when_no_time_is_left():
    assert fit(RECIPE, Position(2, 0, 0), FAST) == StepPlan(2, 37)


def test_a_validation_is_estimated_until_one_was_timed():
    # 100 validation images for 320 training ones: half the cost of an example, a third of them
    assert estimated_val_seconds(1.0, 20, 100 / 320) == 0.5 * 100 / 320 * 20


def test_the_shortfall_is_one_plain_sentence():
    assert shortfall_note(148, 148, 230, finished=True) == ""
    assert shortfall_note(60, 148, 230, finished=True) == (
        "this machine trained 60 of 148 planned steps within the 230 s time budget; "
        "expect lower accuracy"
    )
    assert shortfall_note(60, 148, 230, finished=False).startswith(
        "this machine fits 60 of 148 planned steps"
    )
