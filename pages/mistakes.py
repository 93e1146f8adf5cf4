"""Mistakes: annotations a classifier and a segmenter both doubt, objects nobody annotated, masks
that miss their object (or what an open predictions file's confident errors point to); ranked,
reviewed, exported as a corrected copy."""

import streamlit as st

from explorer.app import dataset_picker, model_picker, predictions_picker, run_on_filter, state
from explorer.app import mistake_review as view
from explorer.coco.dataset import Dataset
from explorer.inference import mistakes
from explorer.inference.pair import ModelPair

source, index = dataset_picker.page_dataset()
dataset = Dataset(index, source.images_dir)
st.title("Mistakes")
detector = view.pick_evidence(predictions_picker.page_predictions(source), "q_evidence")
if detector is not None:
    view.detector_section(source, index, detector, "q_det")
    st.stop()
st.caption(
    "Two models look at every annotation: the classifier at its crop, the segmenter at its "
    "pixels. Where both doubt the label, it is probably wrong; where the segmenter finds a "
    "category no annotation covers and the classifier agrees, an object is probably missing."
)
classifier, segmenter = model_picker.two_model_pickers("q", source.annotations)

result = run_on_filter.evaluate_on_filter(
    run_on_filter.RunBlock(
        "q",
        button="Find mistakes in the current filter",
        working="looking for mistakes",
        what=" (the Browse filter)",
        primary=True,
    ),
    source,
    index,
    (classifier, segmenter),
    lambda rows, options: mistakes.find_mistakes(
        ModelPair(classifier, segmenter), dataset, rows, options=options
    ),
)
if result is None:
    st.info("Press **Find mistakes**: predictions already made are reused from the cache.")
    st.stop()

frame = mistakes.to_frame(result.rows)
state.set_mistakes_table(frame)
st.caption(
    f"{result.objects:,} objects, {result.judged:,} of a category a model can name"
    + (f"; {len(result.unread)} images could not be read" if result.unread else "")
)
for model in (classifier, segmenter):  # scores are calibrated by these (the expander says how)
    model_picker.quality_notice(model)
with st.expander("What the score means"):
    st.markdown(mistakes.__doc__.split("\n\n", 1)[1].split("A model only counts")[0])

decisions = view.decisions_of(source)
shown = view.filtered(frame, index, decisions, "q")
st.caption(
    f"{len(shown):,} {'suspect matches' if len(shown) == 1 else 'suspects match'}, best first"
)
view.segmenter_legend(index, segmenter)
view.cards(view.ReviewPage(source, index, decisions, segmenter=segmenter), shown, "q")

st.subheader("Export")
view.export_block(source, frame, decisions, "q_export")
