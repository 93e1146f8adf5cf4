"""What every figure shares: margins and the plotly template."""

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
LAYOUT = {"margin": MARGIN, "template": "plotly_white"}


def two_line_title(head: str, detail: str) -> dict:
    """:data:`LAYOUT` with a title whose detail goes on a smaller second line: a plotly title does
    not wrap, and one long line was cut in a half-page chart on a narrow window."""
    return LAYOUT | {"title": f"{head}<br><sup>{detail}</sup>", "margin": MARGIN | {"t": 60}}
