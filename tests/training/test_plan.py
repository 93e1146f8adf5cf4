"""The time budget's plan: what a run does on a machine slower than its recipe was measured on.
Pure arithmetic on given throughputs (no clock): the same answers on every machine."""

from __future__ import annotations

from explorer.training.plan import (
    SAFETY,
    Position,
    StepPlan,
    Throughput,
    estimated_val_seconds,
    fit,
    shortfall_note,
)

# a recipe like the quick classifier's on the sample: 4 epochs of 37 steps; on the machine it was
# sized on a step takes ~0.5 s and a validation ~4 s: the whole schedule needs ~90 s of 230 s
RECIPE = StepPlan(epochs=4, steps_per_epoch=37)
FAST = Throughput(step_seconds=0.5, val_seconds=4.0)


def slower(times: float) -> Throughput:
    return Throughput(FAST.step_seconds * times, FAST.val_seconds * times)


def test_the_recipe_is_kept_where_it_fits():
    assert fit(RECIPE, Position(0, 5, 220), FAST) == RECIPE
    assert fit(RECIPE, Position(2, 0, 120), FAST) == RECIPE


def most_steps(plan: StepPlan, at: Position, speed: Throughput) -> None:
    """The plan fits what was left, and no other number of epochs would fit more steps."""
    room = at.seconds_left / SAFETY + at.step_in_epoch * speed.step_seconds
    epochs = plan.epochs - at.epoch

    def cost(e, k):
        return e * (k * speed.step_seconds + speed.val_seconds)

    assert cost(epochs, plan.steps_per_epoch) <= room
    for e in range(1, RECIPE.epochs - at.epoch + 1):
        k = min(RECIPE.steps_per_epoch, int((room / e - speed.val_seconds) // speed.step_seconds))
        assert e * k <= epochs * plan.steps_per_epoch


def test_a_slow_machine_with_cheap_validation_keeps_every_epoch_shorter():
    at, speed = Position(0, 5, 200), Throughput(2.0, 0.0)  # 4x slower steps
    plan = fit(RECIPE, at, speed)
    assert plan.epochs == 4 and 5 <= plan.steps_per_epoch < 37
    most_steps(plan, at, speed)


def test_a_slow_machine_with_costly_validation_does_fewer_fuller_epochs():
    at = Position(0, 5, 200)
    for times in (4, 6, 20):  # slower; validation costs 8 steps
        speed = slower(times)
        plan = fit(RECIPE, at, speed)
        assert 1 <= plan.epochs < 4
        most_steps(plan, at, speed)


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
